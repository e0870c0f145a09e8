//! The durable store: one redb database whose trees hold conversation memory
//! ([`crate::memory`]) and the cost ledger ([`crate::ledger`]). Both are built
//! beside the store, on a [`Store`] handle, and own what their trees mean.
//!
//! This module owns opening the database (one zend at a time), the schema
//! version, the value encoding, the single writer and the handling of corrupt
//! values. The layout is written down here, in one place, so a later zend can
//! migrate it.
//!
//! # API
//! - [`Store::open`]`(data_dir)`: opens `data_dir/store.redb`; fails at once
//!   with [`StoreError::Locked`] when another zend holds it.
//! - [`Store::write`]`(op)`: runs `op` in the writer's next transaction and
//!   resolves once that transaction is durable (see below).
//! - [`Store::read`]: a [`Snapshot`], one consistent view across all trees.
//! - [`Store::close`]: stops the writer after the writes already queued.
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
//!   turn is a plain `Turn`.
//! - `threads_by_updated` is the recency index: listing walks it newest
//!   first; the expiry sweeper walks it oldest first and stops at the first
//!   thread still alive, so it never scans live threads. Expiry is computed
//!   from the last update and the *current* TTL, so changing the TTL applies
//!   to existing threads.
//! - `ledger_totals` holds the aggregates of the `ledger` records, updated in
//!   the same transaction as the records they count, so they equal the
//!   records after any crash. `<period>` is `all`, `d2025-01-31` (UTC day) or
//!   `m2025-01` (UTC month); `<dimension>` is `total` (empty name), `model`,
//!   `tool`, `client` or `project` (the session's working directory, only for
//!   records that carry one; a zend that does not know a dimension skips its
//!   keys, so adding one needs no schema bump). The latency histogram's bucket bounds
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
//! # Durability: one writer, group commit
//!
//! Every write is an operation sent to one writer thread. The writer takes
//! everything queued, runs the operations in order in ONE redb write
//! transaction and commits it with [`Durability::Immediate`]; each caller's
//! future resolves only after that commit returned. Concurrent callers so
//! share one commit (group commit). An operation that fails (a thread that
//! is gone, too many turns) is dropped and the transaction is run again
//! without it, so a failed operation leaves nothing applied and the others
//! still land.
//!
//! - Readers use redb read transactions: they see a write only once its
//!   commit is durable, and a [`Snapshot`] across several trees is one
//!   consistent state.
//! - What a write changes in memory (memory's thread cache) is changed by
//!   hooks ([`Txn::on_commit`]) the writer runs after the commit succeeded,
//!   in commit order.
//! - A commit that fails leaves the database as it was; the callers get
//!   [`StoreError::Failed`], and the store refuses every later write with the
//!   same error: redb has no way to tell which pages reached the disk, and a
//!   retry must not pretend they did. Restarting zend reopens (and if need
//!   be repairs) the file.
//! - Quick repair is off ([`QUICK_REPAIR`]): a commit is one `fdatasync`
//!   and saves no allocator state; the open after a crash walks the file
//!   instead (ARCHITECTURE.md, "The store", says what each costs).
//! - Budgets live in `limits.yaml`, not here.

use std::any::Any;
use std::fmt;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::util::lock;

/// The layout described in this module's docs.
pub const SCHEMA_VERSION: u64 = 2;

const SCHEMA_KEY: &[u8] = b"meta/schema_version";

/// Whether commits save redb's allocator state (see the module docs).
pub const QUICK_REPAIR: bool = false;

/// redb's page cache. Small on purpose: a call reads one thread's turns once
/// (and the thread cache keeps hot threads), the OS page cache keeps the file
/// warm, and zend is a per-user background process that should stay small.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Operations one transaction takes at most: bounds the work a failed
/// operation makes the writer redo.
const MAX_GROUP: usize = 256;

/// Keys and values as the store hands them out; cheap to clone.
pub(crate) type Bytes = Arc<[u8]>;

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
type WriteTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;
type DiskRange = redb::Range<'static, &'static [u8], &'static [u8]>;

const META: Table = TableDefinition::new("meta");

/// Tree names; see the key layout above.
pub mod trees {
    pub const THREADS: &str = "threads";
    pub const TURNS: &str = "turns";
    pub const THREADS_BY_UPDATED: &str = "threads_by_updated";
    pub const WORKFLOW: &str = "workflow";
    pub const LEDGER: &str = "ledger";
    pub const LEDGER_TOTALS: &str = "ledger_totals";
}

/// The trees of the key layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeId {
    Threads,
    Turns,
    ThreadsByUpdated,
    Workflow,
    Ledger,
    LedgerTotals,
}

impl TreeId {
    pub const ALL: [TreeId; 6] = [
        TreeId::Threads,
        TreeId::Turns,
        TreeId::ThreadsByUpdated,
        TreeId::Workflow,
        TreeId::Ledger,
        TreeId::LedgerTotals,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TreeId::Threads => trees::THREADS,
            TreeId::Turns => trees::TURNS,
            TreeId::ThreadsByUpdated => trees::THREADS_BY_UPDATED,
            TreeId::Workflow => trees::WORKFLOW,
            TreeId::Ledger => trees::LEDGER,
            TreeId::LedgerTotals => trees::LEDGER_TOTALS,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn table(self) -> Table {
        TableDefinition::new(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "another zend holds the store at {path}; stop it with `zend stop`, or give this one its own data directory (--data-dir or ZEN_DATA_DIR)"
    )]
    Locked { path: PathBuf },
    #[error(
        "cannot open the store at {path}: {source}; check that the directory is writable and the disk is not full, or move the file aside to start an empty store"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "the store at {path} has schema version {found}, newer than this zend understands ({supported}); upgrade zend, or move the file aside to start an empty store"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error(
        "the store at {path} has an unreadable schema version; move the file aside to start an empty store"
    )]
    BadSchema { path: PathBuf },
    #[error("the store failed to read: {0}; check the data directory and the disk")]
    Io(#[from] redb::Error),
    #[error(
        "the store could not save to disk ({reason}) and takes no more writes until zend restarts, so nothing is reported as saved that may not be; check free disk space and the disk, then run `zend restart`"
    )]
    Failed { reason: String },
    #[error("the store is closed: zend is shutting down; retry once it is back")]
    Closed,
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

/// One write, type-erased for the writer's queue.
trait Job: Send {
    /// Runs the write in `txn`; `false` when it failed (the error is kept for
    /// its caller).
    fn run(&mut self, txn: &mut Txn<'_>) -> bool;
    /// Answers the caller: `committed` is the transaction's fate.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Typed<T, E, F> {
    op: F,
    result: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Typed<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnMut(&mut Txn<'_>) -> Result<T, E> + Send,
{
    fn run(&mut self, txn: &mut Txn<'_>) -> bool {
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| (self.op)(txn))).unwrap_or_else(|panic| {
                Err(E::from(StoreError::Failed {
                    reason: format!("a write failed: {}", panic_message(&*panic)),
                }))
            });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let Typed { op, result, reply } = *self;
        // What the operation holds goes before its caller hears back.
        drop(op);
        let answer = match (result, committed) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(reason)) => Err(E::from(StoreError::Failed {
                reason: reason.to_owned(),
            })),
            (None, Ok(())) => Err(E::from(StoreError::Failed {
                reason: "a write was never run".to_owned(),
            })),
        };
        // The caller may have stopped waiting; the write stands either way.
        let _ = reply.send(answer);
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

type Hook = Box<dyn FnOnce() + Send>;

/// The writer's transaction as one operation sees it.
pub struct Txn<'a> {
    tx: &'a redb::WriteTransaction,
    tables: [Option<WriteTable<'a>>; TreeId::ALL.len()],
    hooks: Vec<Hook>,
}

impl<'a> Txn<'a> {
    fn table(&mut self, tree: TreeId) -> Result<&mut WriteTable<'a>, StoreError> {
        let slot = &mut self.tables[tree.index()];
        if slot.is_none() {
            *slot = Some(self.tx.open_table(tree.table())?);
        }
        Ok(slot
            .as_mut()
            .unwrap_or_else(|| unreachable!("filled above")))
    }

    pub fn get(&mut self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.table(tree)?.get(key)?.map(|v| Bytes::from(v.value())))
    }

    pub fn insert(&mut self, tree: TreeId, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.table(tree)?.insert(key, value)?;
        Ok(())
    }

    pub fn remove(&mut self, tree: TreeId, key: &[u8]) -> Result<(), StoreError> {
        self.table(tree)?.remove(key)?;
        Ok(())
    }

    /// The keys that start with `prefix`, in order.
    pub fn keys_with_prefix(
        &mut self,
        tree: TreeId,
        prefix: &[u8],
    ) -> Result<Vec<Bytes>, StoreError> {
        let end = prefix_end(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let table = self.table(tree)?;
        let mut keys = Vec::new();
        for entry in table.range::<&[u8]>((Bound::Included(prefix), upper))? {
            keys.push(Bytes::from(entry?.0.value()));
        }
        Ok(keys)
    }

    /// Runs `hook` after this transaction committed durably (never if it
    /// did not), on the writer thread, in commit order: for in-memory state
    /// that must only see durable writes.
    pub fn on_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(hook));
    }
}

/// A consistent read of every tree, as of the last durable commit before it
/// was taken.
pub struct Snapshot {
    tx: redb::ReadTransaction,
}

impl Snapshot {
    fn table(&self, tree: TreeId) -> Result<ReadTable, StoreError> {
        Ok(self.tx.open_table(tree.table())?)
    }

    pub fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.table(tree)?.get(key)?.map(|v| Bytes::from(v.value())))
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, tree: TreeId, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref();
        let end = prefix_end(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.range(tree, Bound::Included(prefix), upper, false)
    }

    /// Every entry from `from` on, in key order.
    pub fn range_from(&self, tree: TreeId, from: impl AsRef<[u8]>) -> Iter {
        self.range(
            tree,
            Bound::Included(from.as_ref()),
            Bound::Unbounded,
            false,
        )
    }

    /// Every entry, in key order.
    pub fn iter(&self, tree: TreeId) -> Iter {
        self.range(tree, Bound::Unbounded, Bound::Unbounded, false)
    }

    /// Every entry, last key first.
    pub fn iter_rev(&self, tree: TreeId) -> Iter {
        self.range(tree, Bound::Unbounded, Bound::Unbounded, true)
    }

    fn range(&self, tree: TreeId, lower: Bound<&[u8]>, upper: Bound<&[u8]>, reverse: bool) -> Iter {
        let range = self
            .table(tree)
            .and_then(|table| Ok(table.range::<&[u8]>((lower, upper))?));
        match range {
            Ok(range) => Iter {
                range: Some(range),
                reverse,
                error: None,
            },
            Err(error) => Iter {
                range: None,
                reverse,
                error: Some(error),
            },
        }
    }
}

/// Entries of a tree in order; a read error is yielded once, then the
/// iterator ends.
pub struct Iter {
    range: Option<DiskRange>,
    reverse: bool,
    error: Option<StoreError>,
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        let range = self.range.as_mut()?;
        let item = if self.reverse {
            range.next_back()
        } else {
            range.next()
        };
        match item? {
            Ok((key, value)) => Some(Ok((Bytes::from(key.value()), Bytes::from(value.value())))),
            Err(error) => {
                self.range = None;
                Some(Err(error.into()))
            }
        }
    }
}

/// The first key after every key that starts with `prefix`; `None` when
/// there is none (the prefix is all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

struct Shared {
    db: Database,
    /// Why the store refuses writes, once a commit failed.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        lock(&self.failed).clone()
    }
}

/// The open store. Cloning is cheap and shares the database and its writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `data_dir/store.redb`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("store.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| open_error(&path, source))?;
        Self::start(db, path)
    }

    /// Opens (or creates) a store on a custom redb backend; `label` names it
    /// in errors. For tests that watch or damage what reaches the "disk".
    pub fn open_backend(backend: impl StorageBackend, label: &Path) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(|source| open_error(label, source))?;
        Self::start(db, label.to_path_buf())
    }

    fn start(db: Database, path: PathBuf) -> Result<Store, StoreError> {
        check_schema(&db, &path)?;
        let shared = Arc::new(Shared {
            db,
            failed: Mutex::new(None),
        });
        let (jobs, queue) = mpsc::channel();
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("zend-store".into())
                .spawn(move || write_loop(&shared, &queue))
                .map_err(|e| StoreError::Failed {
                    reason: format!("cannot start the store's writer: {e}"),
                })?
        };
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                path,
                jobs: Mutex::new(Some(jobs)),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// The database file (`data_dir/store.redb`).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A consistent view of every tree as of the last durable commit.
    pub fn read(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            tx: self.inner.shared.db.begin_read()?,
        })
    }

    /// Queues `op` for the writer at once (so writes are applied in the order
    /// of these calls) and resolves with its result once the transaction that
    /// ran it is durable. `op` may run more than once (when another operation
    /// of its transaction fails, the transaction is run again without that
    /// one), so it must not change anything outside `txn` but through
    /// [`Txn::on_commit`].
    pub fn write<T, E, F>(&self, op: F) -> impl Future<Output = Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnMut(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(Typed {
            op,
            result: None,
            reply,
        });
        let queued = match (self.inner.shared.failure(), &*lock(&self.inner.jobs)) {
            (Some(reason), _) => Err(StoreError::Failed { reason }),
            (None, Some(jobs)) => jobs.send(job).map_err(|_| StoreError::Closed),
            (None, None) => Err(StoreError::Closed),
        };
        async move {
            queued?;
            answer.await.unwrap_or(Err(E::from(StoreError::Closed)))
        }
    }

    /// Every write answered so far is durable already; this only reports a
    /// store that refuses writes after a failed commit.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self.inner.shared.failure() {
            Some(reason) => Err(StoreError::Failed { reason }),
            None => Ok(()),
        }
    }

    /// Stops the writer once the writes already queued are committed; later
    /// writes fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.stop())
            .await
            .map_err(|e| StoreError::Failed {
                reason: format!("the store did not close: {e}"),
            })?;
        self.flush().await
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::metadata(&self.inner.path).map_or(0, |m| m.len())
    }
}

impl Inner {
    fn stop(&self) {
        drop(lock(&self.jobs).take());
        if let Some(writer) = lock(&self.writer).take() {
            // The last handle may go with an operation the writer just ran:
            // the writer then ends on its own once its queue is done.
            if writer.thread().id() != std::thread::current().id() {
                let _ = writer.join();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn open_error(path: &Path, source: redb::DatabaseError) -> StoreError {
    match source {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_path_buf(),
        },
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The writer thread: everything queued goes into one transaction.
fn write_loop(shared: &Shared, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(shared, group);
    }
}

fn commit_group(shared: &Shared, mut group: Vec<Box<dyn Job>>) {
    let mut refused = Vec::new();
    let outcome = loop {
        if let Some(reason) = shared.failure() {
            break Err(reason);
        }
        match attempt(shared, &mut group) {
            Ok(Ok(hooks)) => break Ok(hooks),
            Ok(Err(failed)) => {
                // Run again without the operations that failed: they are
                // answered with their own errors.
                for index in failed.into_iter().rev() {
                    refused.push(group.remove(index));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                tracing::error!(error = %reason, "the store cannot commit; refusing further writes");
                *lock(&shared.failed) = Some(reason.clone());
                break Err(reason);
            }
        }
    };
    for job in refused {
        job.finish(Ok(()));
    }
    match outcome {
        Ok(hooks) => {
            for hook in hooks {
                hook();
            }
            for job in group {
                job.finish(Ok(()));
            }
        }
        Err(reason) => {
            for job in group {
                job.finish(Err(&reason));
            }
        }
    }
}

/// One transaction over `group`: the hooks to run when it committed, or the
/// indices of the operations that failed (nothing committed).
fn attempt(
    shared: &Shared,
    group: &mut [Box<dyn Job>],
) -> Result<Result<Vec<Hook>, Vec<usize>>, StoreError> {
    let mut tx = shared.db.begin_write()?;
    tx.set_durability(Durability::Immediate)?;
    tx.set_quick_repair(QUICK_REPAIR);
    let mut failed = Vec::new();
    let hooks = {
        let mut txn = Txn {
            tx: &tx,
            tables: Default::default(),
            hooks: Vec::new(),
        };
        for (index, job) in group.iter_mut().enumerate() {
            if !job.run(&mut txn) {
                failed.push(index);
            }
        }
        txn.hooks
    };
    if !failed.is_empty() {
        tx.abort()?;
        return Ok(Err(failed));
    }
    tx.commit()?;
    Ok(Ok(hooks))
}

/// Writes the schema version into a new store (and creates every table, so
/// readers never meet a missing one); refuses a store from a newer zend.
fn check_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let found = {
        let tx = db.begin_read()?;
        match tx.open_table(META) {
            Ok(table) => table.get(SCHEMA_KEY)?.map(|v| v.value().to_vec()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(error.into()),
        }
    };
    match found.map(|bytes| serde_json::from_slice::<u64>(&bytes)) {
        None => {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            tx.set_quick_repair(QUICK_REPAIR);
            tx.open_table(META)?
                .insert(SCHEMA_KEY, &encode(&SCHEMA_VERSION)?[..])?;
            for tree in TreeId::ALL {
                tx.open_table(tree.table())?;
            }
            tx.commit()?;
            Ok(())
        }
        Some(Ok(SCHEMA_VERSION)) => Ok(()),
        Some(Ok(found)) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
        Some(_) => Err(StoreError::BadSchema {
            path: path.to_path_buf(),
        }),
    }
}

/// Encodes a value as the store does (JSON).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(value)?)
}

/// Decodes a stored value; a corrupt one is logged and skipped (`None`).
pub fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            warn_corrupt(tree, key, &error);
            None
        }
    }
}

/// Logs a value or key that cannot be read; callers then skip it.
pub fn warn_corrupt(tree: &str, key: &[u8], error: &dyn fmt::Display) {
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

/// Helpers for tests of the store and of what is built on it.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A "disk" in memory whose syncs fail once `fail` is set.
    #[derive(Debug, Default)]
    pub(crate) struct MemDisk {
        pub(crate) bytes: Mutex<Vec<u8>>,
        pub(crate) fail: AtomicBool,
    }

    #[derive(Debug, Clone, Default)]
    pub(crate) struct MemBackend(pub(crate) Arc<MemDisk>);

    impl StorageBackend for MemBackend {
        fn len(&self) -> std::io::Result<u64> {
            Ok(lock(&self.0.bytes).len() as u64)
        }

        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            let bytes = lock(&self.0.bytes);
            let start = usize::try_from(offset).map_err(std::io::Error::other)?;
            let source = bytes
                .get(start..start + out.len())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
            out.copy_from_slice(source);
            Ok(())
        }

        fn set_len(&self, len: u64) -> std::io::Result<()> {
            let len = usize::try_from(len).map_err(std::io::Error::other)?;
            lock(&self.0.bytes).resize(len, 0);
            Ok(())
        }

        fn sync_data(&self) -> std::io::Result<()> {
            if self.0.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            Ok(())
        }

        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let mut bytes = lock(&self.0.bytes);
            let start = usize::try_from(offset).map_err(std::io::Error::other)?;
            if bytes.len() < start + data.len() {
                bytes.resize(start + data.len(), 0);
            }
            bytes[start..start + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    impl Store {
        /// Writes behind memory's and the ledger's back, as a damaged file
        /// would hold.
        pub(crate) async fn raw_insert(&self, tree: &str, key: &[u8], value: &[u8]) {
            let tree = tree_named(tree);
            let (key, value) = (key.to_vec(), value.to_vec());
            self.write(move |txn| txn.insert(tree, &key, &value))
                .await
                .unwrap();
        }

        /// Entries in a tree.
        pub(crate) fn tree_len(&self, tree: &str) -> usize {
            self.read().unwrap().iter(tree_named(tree)).count()
        }
    }

    fn tree_named(name: &str) -> TreeId {
        TreeId::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("no tree {name}"))
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

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
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
        let logs = String::from_utf8_lossy(&lock(&captured.0)).into_owned();
        (result, logs)
    }
}

#[cfg(test)]
mod tests;
