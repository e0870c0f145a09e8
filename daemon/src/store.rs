//! The durable store: one redb database holding conversation memory
//! ([`crate::memory`]) and the cost ledger ([`crate::ledger`]).
//!
//! This module owns opening the database (one zend at a time), the schema
//! version, the value encoding, durable flushing and the handling of corrupt
//! values. What lives in the trees is owned by `memory` and `ledger`; the
//! layout is written down here, in one place, so a later zend can migrate it.
//!
//! # API
//! - [`Store::open`]`(data_dir)` / [`Store::open_with`]`(data_dir, StoreOptions)`:
//!   opens `data_dir/store.redb`; fails at once with [`StoreError::Locked`] when
//!   another zend holds it. Opening never scans the data.
//! - [`Store::threads`] → [`crate::memory::Threads`], [`Store::ledger`] →
//!   [`crate::ledger::Ledger`]; both are cheap to clone into tasks.
//! - [`Store::flush`]: makes every write made so far durable.
//!
//! # Key layout (schema version 2)
//!
//! Each tree is a redb table of byte keys and byte values. Integers in keys
//! are big-endian so byte order is numeric order. A thread id in a key is the
//! UUID's 16 raw bytes.
//!
//! | tree (table)         | key                                          | value                  |
//! |----------------------|----------------------------------------------|------------------------|
//! | `meta`               | `meta/schema_version`                        | JSON number (`2`)      |
//! | `threads`            | thread id                                    | `ThreadSummary`        |
//! | `turns`              | thread id, turn index `u32`                  | `Turn`, or `[Turn, …]` |
//! | `threads_by_updated` | last-update ms `u64`, thread id              | empty                  |
//! | `workflow`           | thread id, tool name (UTF-8)                 | any JSON value         |
//! | `ledger`             | call time ms `u64`, sequence `u64`           | `LedgerRecord`         |
//! | `ledger_totals`      | `<period>/<dimension>/<name>` (UTF-8)        | `Aggregate`            |
//!
//! - `threads` holds one small summary per thread (title, times, tools,
//!   models, turn count), so listing threads never reads turns.
//! - `turns`: the turns one write adds together (a model call's exchange:
//!   the prompt and the answer) are ONE value, a JSON array, under the first
//!   one's index; the next key's index is the turn count after them. A single
//!   turn is a plain `Turn`. Schema 1 had one key per turn (a `Turn` each),
//!   which schema 2 reads unchanged. One key per exchange halves the turn keys
//!   and a write per call.
//! - `threads_by_updated` is the recency index: listing walks it newest
//!   first; the expiry sweeper walks it oldest first and stops at the first
//!   thread still alive, so it never scans live threads. Expiry is computed
//!   from the last update and the *current* TTL, so changing the TTL applies
//!   to existing threads.
//! - `ledger_totals` holds the aggregates of the `ledger` records as of the
//!   last checkpoint: zend keeps them current in memory and saves the changed
//!   ones at each checkpoint and on close (`ledger::aggregates`; after a
//!   crash, the records since are counted again from the log). `<period>` is
//!   `all`, `d2025-01-31` (UTC day) or
//!   `m2025-01` (UTC month); `<dimension>` is `total` (empty name), `model`,
//!   `tool` or `client`. The latency histogram's bucket bounds
//!   (`ledger::LATENCY_BUCKETS_MS`) are part of this schema.
//!
//! # Value encoding
//!
//! Values are JSON (`serde_json`, times as RFC 3339 strings). JSON because
//! workflow state is already a `serde_json::Value`, because a value decoded by
//! a newer zend can gain optional fields without a schema bump, and because a
//! dump of the store is readable when something goes wrong; the values are
//! small enough that the extra bytes over a binary format do not matter.
//!
//! A value that does not decode is logged with `tracing::warn!` (tree and key)
//! and skipped — a thread missing a turn or a ledger total starting again from
//! zero is better than a daemon that cannot start. Any change to keys or to
//! the meaning of values bumps [`SCHEMA_VERSION`]; [`Store::open`] refuses a
//! store written by a newer zend and would migrate an older one here.
//!
//! # Durability
//!
//! Every write goes through the write-ahead log ([`wal`]): under one lock, a
//! [`Batch`] is appended to the log as one record, then applied to the
//! engine's in-memory layer ([`engine`]), where readers see it at once.
//! [`Store::flush`] `fdatasync`s the log; the database is written only by
//! the log's checkpoints (a background thread, 5 s after the first write
//! since the last one, or when a log file fills: one redb transaction for
//! everything since, committed durably) and on close. At open, the log's
//! records the database may lack are applied again (they hold final
//! values, so applying one twice is harmless).
//!
//! - Every API that tells a client something was recorded awaits
//!   [`Store::flush`] first, so it survives `kill -9`: thread turns and new
//!   threads (`Threads::create`/`append`, or `write_turns` + one flush by the
//!   engine), ledger records (`Ledger::record*`, or `write_batch` + the same
//!   flush; their aggregates follow from them), workflow state (set and
//!   clear). The
//!   recency index is written in the same batches as the turns.
//! - The sweeper flushes after a sweep that removed threads. Losing a sweep to
//!   `kill -9` would be harmless anyway: expired threads are refused by every
//!   read and the next sweep removes them again; the same holds for the
//!   malformed index keys it drops.
//! - The schema version is written to the `meta` table directly, durably,
//!   before anything else.
//! - Budgets live in `limits.yaml`, not here. Shutdown calls [`Store::close`]
//!   (everything written to the database, log emptied); so does dropping the
//!   last handle.
//!
//! # Migration from sled
//!
//! Before the redb engine, zend kept the same trees in a sled 0.34 database
//! in the directory `data_dir/store`. When that directory exists and
//! `store.redb` does not, [`Store::open`] copies every tree into a new redb
//! file (`store.redb.partial`, renamed when complete and durable), then
//! renames the old directory to `store.sled-migrated` (`migrate`); the log is
//! replayed on top, as after any unclean stop. The old directory is kept
//! for the user to delete.
//!
//! Anything new written to the store must go through a [`Batch`] and either
//! await a flush before it is reported, or be safe to lose. Flushes are
//! coalesced (group commit): concurrent callers share one `fdatasync`. A
//! model call flushes once: its ledger records and its turns share the
//! flush.

mod engine;
mod migrate;
mod time;
mod wal;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use engine::{Bytes, Tree};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub(crate) use wal::{Batch, Deferred, TreeId, Wal};

use engine::Engine;

use crate::ledger::{Aggregates, Ledger, LimitsConfig};
use crate::memory::Threads;

/// The layout described in this module's docs.
/// 2: a write's turns are one `turns` value (see the key layout). Schema 1
/// stores are upgraded in place at open (their values read unchanged).
pub const SCHEMA_VERSION: u64 = 2;

const SCHEMA_KEY: &[u8] = b"meta/schema_version";

/// Tree names; see the key layout above.
pub(crate) mod trees {
    pub const THREADS: &str = "threads";
    pub const TURNS: &str = "turns";
    pub const THREADS_BY_UPDATED: &str = "threads_by_updated";
    pub const WORKFLOW: &str = "workflow";
    pub const LEDGER: &str = "ledger";
    pub const LEDGER_TOTALS: &str = "ledger_totals";
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "another zend holds the store at {path}; stop it with `zend stop`, or give this one its own data directory (--data-dir or ZEN_DATA_DIR)"
    )]
    Locked { path: PathBuf },
    #[error(
        "cannot open the store at {path}: {source}; check that the directory is writable and the disk is not full"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "the store at {path} has schema version {found}, newer than this zend understands ({supported}); upgrade zend, or move the directory aside to start an empty store"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error(
        "the store at {path} has an unreadable schema version; move the directory aside to start an empty store"
    )]
    BadSchema { path: PathBuf },
    #[error("the store failed to read or write: {0}; check free disk space and the data directory")]
    Io(#[from] redb::Error),
    #[error(
        "cannot move the old store at {path} into the new format: {reason}; zend left it as it was; check free disk space, or move the directory aside to start an empty store"
    )]
    Migrate { path: PathBuf, reason: String },
    #[error(
        "cannot write the store's write-ahead log in {path}: {source}; check free disk space and the data directory's permissions"
    )]
    Wal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a value for the store: {0}")]
    Encode(#[from] serde_json::Error),
}

macro_rules! redb_errors {
    ($($error:ident),*) => {$(
        impl From<redb::$error> for StoreError {
            fn from(error: redb::$error) -> Self {
                StoreError::Io(error.into())
            }
        }
    )*};
}

redb_errors!(
    TransactionError,
    TableError,
    StorageError,
    CommitError,
    SetDurabilityError
);

/// How [`Store::open_with`] configures memory and the ledger.
#[derive(Clone)]
pub struct StoreOptions {
    /// `limits.yaml`: thread TTL and max turns, budgets.
    pub limits: LimitsConfig,
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            limits: LimitsConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// The open store. Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct Store {
    engine: Arc<Engine>,
    path: PathBuf,
    wal: Wal,
    threads: Threads,
    ledger: Ledger,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `data_dir/store.redb` with default limits and the wall clock.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let path = data_dir.join("store.redb");
        migrate::from_sled_if_needed(data_dir, &path)?;
        let engine = Engine::open(&path)?;
        check_schema(&engine, &path)?;
        let aggregates = Arc::new(Aggregates::new(engine.tree(TreeId::LedgerTotals)));
        let wal = Wal::open(&data_dir.join("wal"), &engine, aggregates.clone())?;
        let threads = Threads::new(
            crate::memory::ThreadTrees {
                summaries: engine.tree(TreeId::Threads),
                turns: engine.tree(TreeId::Turns),
                by_updated: engine.tree(TreeId::ThreadsByUpdated),
                workflow: engine.tree(TreeId::Workflow),
            },
            wal.clone(),
            options.limits.threads.clone(),
            Arc::clone(&options.clock),
        );
        let ledger = Ledger::new(
            engine.tree(TreeId::Ledger),
            aggregates,
            wal.clone(),
            options.limits.budgets.clone(),
        )?;
        Ok(Store {
            engine,
            path,
            wal,
            threads,
            ledger,
        })
    }

    /// The database file (`data_dir/store.redb`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn threads(&self) -> &Threads {
        &self.threads
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Makes every write made before this call durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.wal.durable().await
    }

    /// Makes everything durable in the database itself and empties the write-ahead
    /// log, so the next open replays nothing: what a clean shutdown does.
    pub async fn close(&self) -> Result<(), StoreError> {
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || wal.close())
            .await
            .map_err(|e| {
                StoreError::Io(redb::Error::Io(std::io::Error::other(format!(
                    "the store close did not complete: {e}"
                ))))
            })?
    }

    /// The trees by name, to read and damage behind the store's back (tests).
    #[cfg(test)]
    pub(crate) fn db(&self) -> test_support::RawDb<'_> {
        test_support::RawDb(&self.engine)
    }

    /// Bytes the database and its write-ahead log take on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.engine.size_on_disk() + self.wal.size_on_disk())
    }
}

/// Writes the schema version into a new store; upgrades an older one; refuses
/// one from a newer zend.
fn check_schema(engine: &Engine, path: &Path) -> Result<(), StoreError> {
    match engine.get_meta(SCHEMA_KEY)? {
        None => {
            // A new store, or one opened before versioning (which held no data).
            engine.put_meta(SCHEMA_KEY, &encode(&SCHEMA_VERSION)?)?;
            Ok(())
        }
        Some(bytes) => match serde_json::from_slice::<u64>(&bytes) {
            Ok(SCHEMA_VERSION) => Ok(()),
            Ok(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            // 1 → 2 changes only what new writes look like: mark the store as
            // 2 and make that durable before anything of schema 2 is written
            // (a zend of schema 1 must refuse it from then on).
            Ok(1) => {
                engine.put_meta(SCHEMA_KEY, &encode(&SCHEMA_VERSION)?)?;
                Ok(())
            }
            Ok(_) | Err(_) => Err(StoreError::BadSchema {
                path: path.to_path_buf(),
            }),
        },
    }
}

/// Encodes a value as the store does (JSON).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(value)?)
}

/// Decodes a stored value; a corrupt one is logged and skipped (`None`).
pub(crate) fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            warn_corrupt(tree, key, &error);
            None
        }
    }
}

/// Logs a value or key that cannot be read; callers then skip it.
pub(crate) fn warn_corrupt(tree: &str, key: &[u8], error: &dyn fmt::Display) {
    tracing::warn!(
        tree,
        key = %KeyDisplay(key),
        %error,
        "skipping a corrupt entry in the store"
    );
}

/// Keys in logs: text when printable, hex otherwise.
struct KeyDisplay<'a>(&'a [u8]);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => f.write_str(text),
            _ => self.0.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

/// Helpers for the store's, memory's and ledger's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A store in a temporary directory with a manual clock at 2025-03-10 12:00 UTC.
    pub(crate) fn open_store(limits: LimitsConfig) -> (tempfile::TempDir, Store, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = reopen(&dir, limits);
        (dir, store, clock)
    }

    pub(crate) fn reopen(
        dir: &tempfile::TempDir,
        limits: LimitsConfig,
    ) -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse_rfc3339("2025-03-10T12:00:00Z").unwrap(),
        ));
        let options = StoreOptions {
            limits,
            clock: clock.clone(),
        };
        let store = retry_while_locked(
            || Store::open_with(dir.path(), options.clone()),
            |e| matches!(e, StoreError::Locked { .. }),
        )
        .unwrap();
        (store, clock)
    }

    /// Runs `open` again while it fails with the database's lock, for up to
    /// 5 s: a task of the test may still hold a handle for a moment after the
    /// test dropped its store.
    pub(crate) fn retry_while_locked<T, E>(
        mut open: impl FnMut() -> Result<T, E>,
        locked: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match open() {
                Err(e) if locked(&e) && std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// Copies the store's files to a new directory as a `kill -9` now would
    /// leave them (the log as written, the database as far as the last
    /// checkpoint).
    pub(crate) fn crash_copy(store: &Store, from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        store.wal.quiet(|| copy_dir(from, to.path()));
        to
    }

    /// Copies a directory tree.
    pub(crate) fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// The trees by name ([`Store::db`]).
    pub(crate) struct RawDb<'a>(pub(super) &'a Arc<Engine>);

    impl RawDb<'_> {
        pub(crate) fn open_tree(&self, name: &str) -> Result<Tree, StoreError> {
            let id = TreeId::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("no tree {name}"));
            Ok(self.0.tree(id))
        }
    }

    /// A checkpoint now, as the log's thread runs one 5 s after a write.
    pub(crate) fn checkpoint(store: &Store) {
        store.wal.checkpoint_now().unwrap();
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` and returns what it logged at WARN and above.
    pub(crate) fn capture_warnings<R>(f: impl FnOnce() -> R) -> (R, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        (result, logs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_says_who_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with("another zend holds the store at "),
            "{message}"
        );
        assert!(message.contains(&dir.path().join("store.redb").display().to_string()));
    }

    #[test]
    fn schema_version_is_written_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(
                store.engine.get_meta(SCHEMA_KEY).unwrap().as_deref(),
                Some(&b"2"[..])
            );
            // A schema-1 store is upgraded in place.
            store.engine.put_meta(SCHEMA_KEY, b"1").unwrap();
        }
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(
                store.engine.get_meta(SCHEMA_KEY).unwrap().as_deref(),
                Some(&b"2"[..])
            );
            store.engine.put_meta(SCHEMA_KEY, b"7").unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 7, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade zend"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_flushes_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..64_u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut batch = Batch::new();
                batch.insert(TreeId::Workflow, &i.to_be_bytes(), &[1_u8][..]);
                store.wal.commit(&batch).unwrap();
                store.flush().await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[test]
    fn keys_display_as_text_or_hex() {
        assert_eq!(KeyDisplay(b"all/total/").to_string(), "all/total/");
        assert_eq!(KeyDisplay(&[0, 255]).to_string(), "00ff");
    }
}
