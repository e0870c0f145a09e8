//! The write-ahead log: how a store write becomes durable without a
//! database transaction per write.
//!
//! Every write to the store goes through [`Wal::commit`] as a [`Batch`]: under
//! one lock (the commit lock) the batch is appended to the log file as one
//! record and then applied to the engine's in-memory layer
//! ([`super::engine`]), so the log's order is the order readers saw, and a
//! batch is all there or not at all after a crash. [`Wal::durable`] then
//! `fdatasync`s the log: one small write to a preallocated file. A database
//! commit per write cost more than the rest of a chat call (sled's flush
//! wrote and synced four buffers; a redb transaction took ~108 µs of CPU:
//! BENCHMARKS.md, "Where a chat call's CPU went" and "The store engine").
//!
//! Records hold the final value of each key (never a delta), so replaying a
//! record twice, or on top of a database state that already holds it, gives
//! the same result. That is what makes recovery simple: at open, every record
//! that may not be in the database is applied again, in order.
//!
//! # Files and checkpoints
//!
//! Two files, `wal/0` and `wal/1`, each preallocated to [`FILE_BYTES`] with
//! zeros (overwriting written blocks needs no metadata update, so
//! `fdatasync` is one data write). One is active. A checkpoint, on a
//! background thread [`CHECKPOINT_AFTER`] after the first write since the last
//! one (sooner when the active file is full), rotates to the other file,
//! freezing the engine's layer of the old file's writes, then drains that
//! layer into the database in one durable transaction: every record of the
//! old file is then in the database and the old file is free. Records
//! larger than what is left of a file are appended past its end; a file that
//! grew past 4× its size is cut back when it is next prepared.
//!
//! # Record format
//!
//! `crc u32 | len u32 | seq u64 | payload[len]`, little-endian; the crc
//! (CRC-32 of `len | seq | payload`, xor [`CRC_SALT`]) makes a torn record or
//! zeros invalid. `seq` counts up by one across files and restarts. The
//! payload is a list of operations: `tree u8 | kind u8 (1 insert, 0 remove) |
//! key_len u32 | key | value_len u32 | value` (no value for a remove).
//!
//! # Recovery
//!
//! A file is read from its start while records are valid and each `seq` is
//! the previous plus one: a chain. Stale bytes from an older use of the file
//! end the chain (their seq is lower). The chains are replayed oldest first,
//! but only the run of chains that are contiguous with the newest one: an
//! older chain that is not contiguous was checkpointed before the newest
//! chain began. Replaying a chain that was already checkpointed is harmless
//! (final values). After a replay, the database is written and both files' first
//! headers are zeroed; a clean shutdown checkpoints, so the next open reads
//! two zero headers and replays nothing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::StoreError;
use super::engine::{Bytes, Engine};

/// Each log file's preallocated size.
pub(crate) const FILE_BYTES: u64 = 2 * 1024 * 1024;

/// How long after the first write since the last checkpoint the next one
/// runs (sooner when the active file fills).
pub(crate) const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);

/// Mixed into every record's crc so that zeros never read as a record.
const CRC_SALT: u32 = 0x7a65_6e31; // "zen1"

const HEADER_BYTES: usize = 16;

/// A sync is run on the calling thread while syncs average at most this.
const INLINE_SYNC_MICROS: u64 = 1_000;

/// The trees a batch can write; stored as one byte in the log, so the
/// numbers never change meaning (names in [`super::trees`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TreeId {
    Threads = 1,
    Turns = 2,
    ThreadsByUpdated = 3,
    Workflow = 4,
    Ledger = 5,
    LedgerTotals = 6,
}

impl TreeId {
    pub(crate) const ALL: [TreeId; 6] = [
        TreeId::Threads,
        TreeId::Turns,
        TreeId::ThreadsByUpdated,
        TreeId::Workflow,
        TreeId::Ledger,
        TreeId::LedgerTotals,
    ];

    pub(crate) fn name(self) -> &'static str {
        use super::trees;
        match self {
            TreeId::Threads => trees::THREADS,
            TreeId::Turns => trees::TURNS,
            TreeId::ThreadsByUpdated => trees::THREADS_BY_UPDATED,
            TreeId::Workflow => trees::WORKFLOW,
            TreeId::Ledger => trees::LEDGER,
            TreeId::LedgerTotals => trees::LEDGER_TOTALS,
        }
    }

    fn from_byte(byte: u8) -> Option<TreeId> {
        TreeId::ALL.into_iter().find(|t| *t as u8 == byte)
    }

    pub(crate) fn index(self) -> usize {
        self as usize - 1
    }
}

/// The tree whose batches are *snapshots* of a [`Deferred`] state, and the
/// tree whose records that state summarises.
const SNAPSHOT_TREE: TreeId = TreeId::LedgerTotals;
const RECORD_TREE: TreeId = TreeId::Ledger;

/// State its owner keeps in memory and writes only at checkpoints: the
/// ledger's aggregates, which every ledger record changes (twelve values per
/// call) but only `zend status` and budget checks read.
///
/// What keeps it exact across a crash: every checkpoint and close calls
/// [`Deferred::snapshot`], which holds the owner's lock (the one its record
/// writers commit under) while the log rotates and, when anything changed,
/// a snapshot batch (writes of [`SNAPSHOT_TREE`]) opens the new file. The
/// records of [`RECORD_TREE`] that follow the last snapshot in the log are
/// then exactly those the saved state lacks; a replay hands them to
/// [`Deferred::recover`] and writes the result as a snapshot before zend
/// serves.
pub(crate) trait Deferred: Send + Sync {
    /// Folds in records (key, value) the saved state lacks.
    fn recover(&self, records: &[(Bytes, Bytes)]) -> Result<(), StoreError>;
    /// Calls `write` once, with the owner's lock held: with the batch of what
    /// changed since the last snapshot, or `None`. Forgets the changes when
    /// `write` succeeds.
    fn snapshot(
        &self,
        write: &mut dyn FnMut(Option<&Batch>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// For a log without deferred state (tests).
#[cfg(test)]
pub(crate) struct NothingDeferred;

#[cfg(test)]
impl Deferred for NothingDeferred {
    fn recover(&self, _: &[(Bytes, Bytes)]) -> Result<(), StoreError> {
        Ok(())
    }
    fn snapshot(
        &self,
        write: &mut dyn FnMut(Option<&Batch>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        write(None)
    }
}

/// Writes that land together: one log record, applied in order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    ops: Vec<Op>,
}

#[derive(Debug)]
struct Op {
    tree: TreeId,
    key: Bytes,
    value: Option<Bytes>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn insert(&mut self, tree: TreeId, key: &[u8], value: impl Into<Bytes>) {
        self.ops.push(Op {
            tree,
            key: Bytes::from(key),
            value: Some(value.into()),
        });
    }

    pub(crate) fn remove(&mut self, tree: TreeId, key: &[u8]) {
        self.ops.push(Op {
            tree,
            key: Bytes::from(key),
            value: None,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations in order: tree, key, value (`None`: a remove).
    pub(crate) fn ops(&self) -> impl Iterator<Item = (TreeId, &Bytes, Option<&Bytes>)> {
        self.ops
            .iter()
            .map(|op| (op.tree, &op.key, op.value.as_ref()))
    }

    fn encode_into(&self, buf: &mut Vec<u8>) {
        for op in &self.ops {
            buf.push(op.tree as u8);
            buf.push(u8::from(op.value.is_some()));
            put_bytes(buf, &op.key);
            if let Some(value) = &op.value {
                put_bytes(buf, value);
            }
        }
    }

    fn decode(mut payload: &[u8]) -> Result<Batch, &'static str> {
        let mut batch = Batch::new();
        while !payload.is_empty() {
            let [tree, kind, rest @ ..] = payload else {
                return Err("truncated operation");
            };
            let tree = TreeId::from_byte(*tree).ok_or("unknown tree")?;
            let (key, rest) = take_bytes(rest)?;
            let (value, rest) = match kind {
                0 => (None, rest),
                1 => {
                    let (value, rest) = take_bytes(rest)?;
                    (Some(Bytes::from(value)), rest)
                }
                _ => return Err("unknown operation"),
            };
            batch.ops.push(Op {
                tree,
                key: Bytes::from(key),
                value,
            });
            payload = rest;
        }
        Ok(batch)
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are far below 4 GiB (a prompt is capped long before); saturating keeps
    // the record's crc honest and a replay would stop at it rather than misread it.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

fn take_bytes(buf: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (len, rest) = buf.split_first_chunk::<4>().ok_or("truncated length")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("truncated bytes");
    }
    Ok(rest.split_at(len))
}

/// The log and the engine it applies to. Cloning is cheap; dropping the
/// last clone stops the checkpoint thread and closes the log.
#[derive(Clone)]
pub(crate) struct Wal {
    inner: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Stops and joins the checkpoint thread, then closes the log, when the
/// last [`Wal`] goes: so the database is released when the store is
/// dropped, even if a checkpoint was running.
struct Owner {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    engine: Arc<Engine>,
    dir: PathBuf,
    /// The commit lock.
    log: Mutex<Log>,
    /// The seq of the last record appended.
    written: AtomicU64,
    /// Every record up to this seq is durable.
    synced: AtomicU64,
    /// One `fdatasync` at a time; waiters then find their record covered.
    sync_turn: tokio::sync::Mutex<()>,
    /// A moving average of how long a sync took (µs).
    sync_micros: AtomicU64,
    /// One checkpoint (or close) at a time: only they freeze and drain the
    /// engine's layers.
    checkpointing: Mutex<()>,
    signal: Arc<Signal>,
    deferred: Arc<dyn Deferred>,
}

struct Log {
    files: [Arc<File>; 2],
    active: usize,
    offset: u64,
    next_seq: u64,
    /// Records were appended since the last rotation.
    dirty: bool,
    buf: Vec<u8>,
}

/// Wakes the checkpoint thread.
#[derive(Default)]
struct Signal {
    state: Mutex<SignalState>,
    wake: Condvar,
}

#[derive(Default)]
struct SignalState {
    /// A write happened since the last checkpoint: run one within CHECKPOINT_AFTER.
    armed: bool,
    /// The active file is full: run one now.
    urgent: bool,
    closed: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wal {
    /// Opens the log in `dir` (creating it), replays what the database may
    /// lack into `engine` (handing `deferred` the records its saved state lacks), and
    /// starts the checkpoint thread.
    pub(crate) fn open(
        dir: &Path,
        engine: &Arc<Engine>,
        deferred: Arc<dyn Deferred>,
    ) -> Result<Wal, StoreError> {
        let wal = Self::open_quiet(dir, engine, deferred)?;
        let thread = spawn_checkpointer(&wal.inner)?;
        *lock(&wal._owner.thread) = Some(thread);
        Ok(wal)
    }

    /// [`Wal::open`] without the checkpoint thread (tests drive it by hand).
    fn open_quiet(
        dir: &Path,
        engine: &Arc<Engine>,
        deferred: Arc<dyn Deferred>,
    ) -> Result<Wal, StoreError> {
        let wal_error = |source| StoreError::Wal {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(wal_error)?;
        let open = |n: usize| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(dir.join(n.to_string()))
                .map_err(wal_error)
        };
        let files = [open(0)?, open(1)?];
        let mut chains = Vec::new();
        for (n, file) in files.iter().enumerate() {
            chains.extend(read_chain(file).map_err(wal_error)?.map(|mut chain| {
                chain.file = n;
                chain
            }));
        }
        let last_seq = chains.iter().map(|c| c.last_seq()).max().unwrap_or(0);
        let replay = contiguous_suffix(chains);
        let mut replayed = 0_usize;
        // Records of RECORD_TREE after the last snapshot (see `Deferred`).
        let mut unsnapshotted: Vec<(Bytes, Bytes)> = Vec::new();
        for chain in &replay {
            for (seq, payload) in &chain.records {
                match Batch::decode(payload) {
                    Ok(batch) => {
                        engine.apply(&batch);
                        replayed += 1;
                        if batch.ops.iter().any(|op| op.tree == SNAPSHOT_TREE) {
                            unsnapshotted.clear();
                        }
                        unsnapshotted.extend(batch.ops.iter().filter_map(|op| {
                            let value = op.value.as_ref().filter(|_| op.tree == RECORD_TREE)?;
                            Some((op.key.clone(), value.clone()))
                        }));
                    }
                    Err(problem) => tracing::warn!(
                        seq,
                        problem,
                        "skipping an unreadable record in the write-ahead log"
                    ),
                }
            }
        }
        if replayed > 0 {
            engine.persist()?;
            tracing::info!(
                records = replayed,
                "replayed the write-ahead log after an unclean stop"
            );
        }
        // With nothing left to recover, the log starts over in file 0.
        // Otherwise it goes on after the newest chain, so that the recovered
        // snapshot lands after the records it accounts for, and a crash
        // before it is durable replays the same log again.
        let (active, offset) = match replay.last() {
            Some(newest) if !unsnapshotted.is_empty() => (newest.file, newest.end),
            _ => {
                if !replay.is_empty() {
                    for file in &files {
                        file.write_all_at(&[0; HEADER_BYTES], 0)
                            .map_err(wal_error)?;
                    }
                }
                (0, 0)
            }
        };
        let [f0, f1] = files;
        let inner = Arc::new(Shared {
            engine: Arc::clone(engine),
            dir: dir.to_path_buf(),
            log: Mutex::new(Log {
                files: [Arc::new(f0), Arc::new(f1)],
                active,
                offset,
                next_seq: last_seq + 1,
                dirty: offset > 0,
                buf: Vec::new(),
            }),
            written: AtomicU64::new(last_seq),
            synced: AtomicU64::new(last_seq),
            sync_turn: tokio::sync::Mutex::new(()),
            sync_micros: AtomicU64::new(0),
            checkpointing: Mutex::new(()),
            signal: Arc::new(Signal::default()),
            deferred,
        });
        if !unsnapshotted.is_empty() {
            inner.arm(false);
            inner.deferred.recover(&unsnapshotted)?;
            inner.deferred.snapshot(&mut |snapshot| {
                let mut log = lock(&inner.log);
                if let Some(snapshot) = snapshot {
                    inner.append(&mut log, snapshot)?;
                }
                log.files[log.active]
                    .sync_data()
                    .map_err(|e| inner.io_error(e))?;
                inner.synced.fetch_max(log.next_seq - 1, Ordering::AcqRel);
                Ok(())
            })?;
            tracing::info!(
                records = unsnapshotted.len(),
                "recounted the ledger totals of calls made since their last save"
            );
        }
        let owner = Arc::new(Owner {
            shared: Arc::clone(&inner),
            thread: Mutex::new(None),
        });
        Ok(Wal {
            inner,
            _owner: owner,
        })
    }

    /// Appends `batch` to the log, then applies it to the engine's active
    /// layer (in memory; a checkpoint writes it to the database), **not yet
    /// durable**: await [`Wal::durable`] before reporting it.
    ///
    /// A reader sees the batch once `commit` returns. Readers copy what they
    /// need of the layers under one short lock, so a reader and a commit
    /// never see half of each other's work; writers still order their
    /// batches so that a part would never mislead (turns before the summary
    /// that counts them).
    pub(crate) fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let mut log = lock(&inner.log);
        inner.append(&mut log, batch)
    }

    /// Makes every record committed before this call durable. Concurrent
    /// callers share one `fdatasync` (group commit).
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let target = inner.written.load(Ordering::Acquire);
        if inner.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _turn = inner.sync_turn.lock().await;
        if inner.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let (file, covers) = {
            let log = lock(&inner.log);
            (Arc::clone(&log.files[log.active]), log.next_seq - 1)
        };
        // A rotation meanwhile syncs the old file itself, so syncing the file
        // that is active now covers every record up to `covers`.
        // A quick sync runs on this thread: handing it to the blocking pool
        // cost ~55 µs of CPU per call in thread wake-ups (BENCHMARKS.md). A
        // slow disk would stall every session meanwhile, so once syncs are
        // slow they go to the blocking pool until they are quick again.
        let started = std::time::Instant::now();
        let synced = if inner.sync_micros.load(Ordering::Relaxed) <= INLINE_SYNC_MICROS {
            file.sync_data()
        } else {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| std::io::Error::other(format!("the log sync did not complete: {e}")))
                .and_then(|r| r)
        };
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let average = inner.sync_micros.load(Ordering::Relaxed);
        inner
            .sync_micros
            .store(average - average / 8 + took / 8, Ordering::Relaxed);
        synced.map_err(|e| inner.io_error(e))?;
        inner.synced.fetch_max(covers, Ordering::AcqRel);
        Ok(())
    }

    /// Writes everything to the database and empties the log (blocking): what a clean shutdown
    /// does, so the next open replays nothing. Writers wait meanwhile.
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }

    /// Runs a checkpoint now (tests).
    #[cfg(test)]
    pub(crate) fn checkpoint_now(&self) -> Result<(), StoreError> {
        self.inner.checkpoint(false)
    }

    /// Runs `f` while no checkpoint can write to the database (tests that copy the
    /// files, as a `kill -9` would leave them).
    #[cfg(test)]
    pub(crate) fn quiet<R>(&self, f: impl FnOnce() -> R) -> R {
        let _one = lock(&self.inner.checkpointing);
        f()
    }

    /// Bytes the log files take on disk.
    pub(crate) fn size_on_disk(&self) -> u64 {
        let log = lock(&self.inner.log);
        log.files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Shared {
    fn io_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Wal {
            path: self.dir.clone(),
            source,
        }
    }

    /// Writes `batch` as the next record of the active file and applies it
    /// to the engine; the caller holds the commit lock (`log`).
    fn append(&self, log: &mut Log, batch: &Batch) -> Result<(), StoreError> {
        let seq = log.next_seq;
        let Log {
            files,
            active,
            offset,
            buf,
            ..
        } = log;
        buf.clear();
        buf.extend_from_slice(&[0; HEADER_BYTES]);
        batch.encode_into(buf);
        let len = u32::try_from(buf.len() - HEADER_BYTES)
            .map_err(|_| self.io_error(std::io::Error::other("a write over 4 GiB")))?;
        buf[4..8].copy_from_slice(&len.to_le_bytes());
        buf[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&buf[4..]) ^ CRC_SALT;
        buf[0..4].copy_from_slice(&crc.to_le_bytes());
        let file = &files[*active];
        file.write_all_at(buf, *offset)
            .map_err(|e| self.io_error(e))?;
        self.engine.apply(batch);
        *offset += buf.len() as u64;
        let full = *offset >= FILE_BYTES;
        let first = !log.dirty;
        log.next_seq += 1;
        log.dirty = true;
        self.written.store(seq, Ordering::Release);
        if first || full {
            self.arm(full);
        }
        Ok(())
    }

    /// Asks the checkpoint thread for a checkpoint within
    /// [`CHECKPOINT_AFTER`], or now when `urgent`.
    fn arm(&self, urgent: bool) {
        let mut signal = lock(&self.signal.state);
        signal.armed = true;
        signal.urgent |= urgent;
        self.signal.wake.notify_one();
    }

    /// Rotates to the other file (opening it with the deferred state's
    /// snapshot), freezing the engine's writes so far, and drains them into
    /// the database, so the old file's records are all durable there and
    /// the file is free. `force` also rotates a clean log.
    fn checkpoint(&self, force: bool) -> Result<(), StoreError> {
        let _one = lock(&self.checkpointing);
        // A drain that failed left records of the inactive file in the
        // frozen layer: they must be in the database before that file is
        // reused.
        self.engine.drain()?;
        let next = {
            let log = lock(&self.log);
            if !log.dirty && !force {
                return Ok(());
            }
            Arc::clone(&log.files[1 - log.active])
        };
        // The inactive file's records were checkpointed before, so it may be
        // overwritten.
        prepare(&next).map_err(|e| self.io_error(e))?;
        let mut old = None;
        self.deferred.snapshot(&mut |snapshot| {
            let mut log = lock(&self.log);
            let active = Arc::clone(&log.files[log.active]);
            if log.dirty {
                active.sync_data().map_err(|e| self.io_error(e))?;
                self.synced.fetch_max(log.next_seq - 1, Ordering::AcqRel);
            }
            // Zeros first, so stale records of this file never follow the
            // new ones.
            next.write_all_at(&[0; HEADER_BYTES], 0)
                .map_err(|e| self.io_error(e))?;
            log.active = 1 - log.active;
            log.offset = 0;
            log.dirty = false;
            // Under the commit lock: the frozen layer is exactly the old
            // file's records.
            self.engine.freeze();
            old = Some(active);
            match snapshot {
                Some(snapshot) => self.append(&mut log, snapshot),
                None => Ok(()),
            }
        })?;
        self.engine.drain()?;
        if let Some(old) = old {
            old.write_all_at(&[0; HEADER_BYTES], 0)
                .map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    /// Writes the deferred state's snapshot, writes everything to the
    /// database with the commit lock held, then zeroes the active file's
    /// first header: every record is durable in the database.
    fn close(&self) -> Result<(), StoreError> {
        let _one = lock(&self.checkpointing);
        self.deferred.snapshot(&mut |snapshot| {
            let mut log = lock(&self.log);
            if let Some(snapshot) = snapshot {
                self.append(&mut log, snapshot)?;
            }
            self.engine.persist()?;
            if !log.dirty {
                return Ok(());
            }
            self.synced.fetch_max(log.next_seq - 1, Ordering::AcqRel);
            log.files[log.active]
                .write_all_at(&[0; HEADER_BYTES], 0)
                .map_err(|e| self.io_error(e))?;
            log.offset = 0;
            log.dirty = false;
            Ok(())
        })
    }

    /// The active file is not preallocated (a new store): rotate to a
    /// preallocated one, then preallocate this one for the next rotation.
    fn prepare_both(&self) -> Result<(), StoreError> {
        let unprepared = {
            let log = lock(&self.log);
            let active = &log.files[log.active];
            active.metadata().map_err(|e| self.io_error(e))?.len() < FILE_BYTES
        };
        if unprepared {
            self.checkpoint(true)?;
            let _one = lock(&self.checkpointing);
            let idle = {
                let log = lock(&self.log);
                Arc::clone(&log.files[1 - log.active])
            };
            prepare(&idle).map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        {
            let mut signal = lock(&self.shared.signal.state);
            signal.closed = true;
            self.shared.signal.wake.notify_one();
        }
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
        if let Err(error) = self.shared.close() {
            tracing::error!(%error, "cannot flush the store on close");
        }
    }
}

/// Zero-fills `file` to [`FILE_BYTES`] (a new file), or cuts one that grew
/// past 4× that back (huge records), and syncs it.
fn prepare(file: &File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if (FILE_BYTES..=4 * FILE_BYTES).contains(&len) {
        return Ok(());
    }
    if len > FILE_BYTES {
        file.set_len(FILE_BYTES)?;
    } else {
        let zeros = vec![0_u8; 256 * 1024];
        let mut at = len;
        while at < FILE_BYTES {
            let n = zeros.len().min((FILE_BYTES - at) as usize);
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
    }
    file.sync_all()
}

fn spawn_checkpointer(shared: &Arc<Shared>) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let shared = Arc::clone(shared);
    let dir = shared.dir.clone();
    std::thread::Builder::new()
        .name("zend-wal".to_owned())
        .spawn(move || checkpoint_loop(&shared))
        .map_err(|source| StoreError::Wal { path: dir, source })
}

/// The checkpoint thread: preallocates the files, then checkpoints
/// [`CHECKPOINT_AFTER`] after each first write (at once when a file is full)
/// until the log is closed. Idle, it sleeps without a timer.
fn checkpoint_loop(shared: &Shared) {
    if let Err(error) = shared.prepare_both() {
        tracing::warn!(%error, "cannot preallocate the write-ahead log");
    }
    let signal = &shared.signal;
    loop {
        {
            let mut state = lock(&signal.state);
            while !state.armed && !state.closed {
                state = signal
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !state.urgent && !state.closed {
                state = signal
                    .wake
                    .wait_timeout_while(state, CHECKPOINT_AFTER, |s| !s.urgent && !s.closed)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if state.closed {
                return;
            }
            state.armed = false;
            state.urgent = false;
        }
        if let Err(error) = shared.checkpoint(false) {
            tracing::error!(%error, "cannot checkpoint the store; retrying later");
            lock(&signal.state).armed = true;
        }
    }
}

/// Valid records read from the start of one file.
struct Chain {
    records: Vec<(u64, Vec<u8>)>,
    /// Which file (set by the caller) and the offset after its last record.
    file: usize,
    end: u64,
}

impl Chain {
    fn first_seq(&self) -> u64 {
        self.records[0].0
    }
    fn last_seq(&self) -> u64 {
        self.records[self.records.len() - 1].0
    }
}

/// What a chain is read from: a log file, or bytes in tests.
trait ReadAt {
    /// Fills `buf` from `offset`; `false` when the source ends first.
    fn read_exact_at_or_end(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool>;
}

impl ReadAt for File {
    fn read_exact_at_or_end(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
        match self.read_exact_at(buf, offset) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl ReadAt for [u8] {
    fn read_exact_at_or_end(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
        let start = offset as usize;
        match self.get(start..start + buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Reads records from offset 0 while they are valid and their seqs count up
/// by one. A clean log costs one 16-byte read per file.
fn read_chain(source: &(impl ReadAt + ?Sized)) -> std::io::Result<Option<Chain>> {
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut at = 0_u64;
    let mut header = [0_u8; HEADER_BYTES];
    while source.read_exact_at_or_end(&mut header, at)? {
        let [c0, c1, c2, c3, l0, l1, l2, l3, s @ ..] = header;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let seq = u64::from_le_bytes(s);
        if seq == 0 || records.last().is_some_and(|(last, _)| seq != last + 1) {
            break;
        }
        let mut payload = vec![0_u8; len as usize];
        if !source.read_exact_at_or_end(&mut payload, at + HEADER_BYTES as u64)? {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[4..]);
        hasher.update(&payload);
        if hasher.finalize() ^ CRC_SALT != crc {
            break;
        }
        records.push((seq, payload));
        at += (HEADER_BYTES + len as usize) as u64;
    }
    Ok((!records.is_empty()).then_some(Chain {
        records,
        file: 0,
        end: at,
    }))
}

/// The newest chain and the older chains that lead up to it without a gap,
/// oldest first.
fn contiguous_suffix(mut chains: Vec<Chain>) -> Vec<Chain> {
    chains.sort_by_key(|c| c.first_seq());
    let mut keep = chains.len();
    while keep >= 2 && chains[keep - 2].last_seq() + 1 == chains[keep - 1].first_seq() {
        keep -= 1;
    }
    chains.split_off(keep.saturating_sub(1).min(chains.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Arc<Engine>, Wal) {
        let engine = Engine::open(&dir.join("store.redb")).unwrap();
        let wal = Wal::open_quiet(&dir.join("wal"), &engine, Arc::new(NothingDeferred)).unwrap();
        (engine, wal)
    }

    fn put(wal: &Wal, key: &str, value: &str) {
        let mut batch = Batch::new();
        batch.insert(TreeId::Turns, key.as_bytes(), value.as_bytes());
        batch.insert(TreeId::Workflow, key.as_bytes(), value.as_bytes());
        wal.commit(&batch).unwrap();
    }

    fn get(engine: &Arc<Engine>, key: &str) -> Option<String> {
        let a = engine.tree(TreeId::Turns).get(key).unwrap();
        let b = engine.tree(TreeId::Workflow).get(key).unwrap();
        assert_eq!(a, b, "a batch landed in one tree and not the other");
        a.map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    /// What a `kill -9` leaves: the log files as written, the database as
    /// far as checkpoints got (here: nothing since `db_state` was copied).
    fn crash_copy(from: &Path, db_state: &Path, to: &Path) {
        std::fs::create_dir_all(to.join("wal")).unwrap();
        for n in ["0", "1"] {
            std::fs::copy(from.join("wal").join(n), to.join("wal").join(n)).unwrap();
        }
        std::fs::copy(db_state.join("store.redb"), to.join("store.redb")).unwrap();
    }

    /// A new store, and a copy of the database as created: what a crash
    /// before any checkpoint would leave of it.
    fn open_and_save_db_state() -> (tempfile::TempDir, Arc<Engine>, Wal, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (engine, wal) = open(dir.path());
        let db_state = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.path().join("store.redb"),
            db_state.path().join("store.redb"),
        )
        .unwrap();
        (dir, engine, wal, db_state)
    }

    #[tokio::test]
    async fn durable_records_come_back_after_a_crash_before_any_checkpoint() {
        let (dir, db, wal, db_state) = open_and_save_db_state();
        put(&wal, "a", "1");
        put(&wal, "b", "2");
        put(&wal, "a", "3");
        let mut batch = Batch::new();
        batch.remove(TreeId::Turns, b"b");
        batch.remove(TreeId::Workflow, b"b");
        wal.commit(&batch).unwrap();
        wal.durable().await.unwrap();

        let crashed = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), db_state.path(), crashed.path());
        let (db2, wal2) = open(crashed.path());
        assert_eq!(get(&db2, "a").as_deref(), Some("3"));
        assert_eq!(get(&db2, "b"), None);
        // Writes after the recovery continue the sequence and survive too.
        put(&wal2, "c", "4");
        wal2.durable().await.unwrap();
        drop(wal2);
        drop(db2);
        let (db3, _wal3) = open(crashed.path());
        assert_eq!(get(&db3, "a").as_deref(), Some("3"));
        assert_eq!(get(&db3, "c").as_deref(), Some("4"));
        drop((db, wal));
    }

    #[tokio::test]
    async fn a_torn_last_record_is_ignored_and_the_rest_replayed() {
        let (dir, db, wal, db_state) = open_and_save_db_state();
        put(&wal, "a", "1");
        put(&wal, "b", "2");
        wal.durable().await.unwrap();
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), db_state.path(), crashed.path());
        // Tear the second record: flip a byte of its payload.
        let active = {
            let log = lock(&wal.inner.log);
            log.active
        };
        let path = crashed.path().join("wal").join(active.to_string());
        let mut bytes = std::fs::read(&path).unwrap();
        let first = read_chain(&bytes[..]).unwrap().unwrap().records[0].1.len() + HEADER_BYTES;
        bytes[first + HEADER_BYTES + 3] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (db2, _wal2) = open(crashed.path());
        assert_eq!(get(&db2, "a").as_deref(), Some("1"));
        assert_eq!(get(&db2, "b"), None);
        drop((db, wal));
    }

    #[tokio::test]
    async fn checkpoints_rotate_and_a_clean_close_leaves_nothing_to_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = open(dir.path());
        for i in 0..50 {
            put(&wal, &format!("k{i}"), &format!("v{i}"));
        }
        wal.durable().await.unwrap();
        // What the checkpoint thread does: preallocate both files, rotating
        // away from the new (short) one, then rotate again.
        wal.inner.prepare_both().unwrap();
        assert_eq!(lock(&wal.inner.log).active, 1);
        put(&wal, "k0", "after");
        wal.durable().await.unwrap();
        wal.inner.checkpoint(false).unwrap();
        assert_eq!(lock(&wal.inner.log).active, 0);
        put(&wal, "k1", "last");
        wal.durable().await.unwrap();
        wal.close().unwrap();
        drop(wal);
        drop(db);
        for n in ["0", "1"] {
            let bytes = std::fs::read(dir.path().join("wal").join(n)).unwrap();
            assert!(
                read_chain(&bytes[..]).unwrap().is_none(),
                "file {n} still holds records"
            );
            assert_eq!(
                bytes.len() as u64,
                FILE_BYTES,
                "file {n} is not preallocated"
            );
        }
        let (db2, _wal2) = open(dir.path());
        assert_eq!(get(&db2, "k0").as_deref(), Some("after"));
        assert_eq!(get(&db2, "k1").as_deref(), Some("last"));
        assert_eq!(get(&db2, "k49").as_deref(), Some("v49"));
    }

    #[test]
    fn only_chains_contiguous_with_the_newest_are_replayed() {
        let record = |seq: u64| {
            let mut buf = vec![0; HEADER_BYTES];
            buf.extend_from_slice(b"x");
            buf[4..8].copy_from_slice(&1_u32.to_le_bytes());
            buf[8..16].copy_from_slice(&seq.to_le_bytes());
            let crc = crc32fast::hash(&buf[4..]) ^ CRC_SALT;
            buf[0..4].copy_from_slice(&crc.to_le_bytes());
            buf
        };
        let file = |seqs: &[u64]| seqs.iter().flat_map(|s| record(*s)).collect::<Vec<u8>>();
        // A stale tail (seq 3 after 8) ends a chain.
        let a = file(&[7, 8, 3, 4]);
        let chain = |bytes: &[u8]| read_chain(bytes).unwrap().unwrap();
        let chain_a = chain(&a);
        assert_eq!((chain_a.first_seq(), chain_a.last_seq()), (7, 8));
        // 5..6 leads into 7..8: both replayed, oldest first.
        let b = file(&[5, 6]);
        let kept = contiguous_suffix(vec![chain(&a), chain(&b)]);
        assert_eq!(
            kept.iter().map(|c| c.first_seq()).collect::<Vec<_>>(),
            [5, 7]
        );
        // 1..2 does not: it was checkpointed before 7 was written.
        let c = file(&[1, 2]);
        let kept = contiguous_suffix(vec![chain(&c), chain(&a)]);
        assert_eq!(kept.iter().map(|c| c.first_seq()).collect::<Vec<_>>(), [7]);
        // Zeros are no record.
        assert!(read_chain(&[0_u8; 64][..]).unwrap().is_none());
    }
}
