//! [`Threads`]: creating, continuing, reading, listing and expiring threads.
//!
//! Every write is one operation of the store's writer ([`Store::write`]): it
//! reads the summary in the writer's transaction, checks it and writes the
//! summary, the turns and the recency index together, so a crash never
//! leaves a turn without its summary, and two writes to one thread never
//! interleave. The call returns once the transaction is durable.
//!
//! Recently used threads are also kept decoded in memory ([`super::cache`]),
//! so continuing a thread reads nothing from the store. The cache sees a
//! write only after its commit succeeded (the writer's commit hooks update
//! it), and a cache miss is filled from a snapshot under the thread's stripe
//! lock, which the hooks take too: see [`Threads::get`].

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::Value;

use super::cache::{CachedThread, ThreadCache};
use super::history::estimate_tokens;
use super::thread::title_from;
use super::{
    AppendOutcome, NewThread, NewTurn, Thread, ThreadError, ThreadFilter, ThreadId, ThreadSummary,
    Turn,
};
use crate::config::MemoryConfig;
use crate::store::{Snapshot, Store, TreeId, Txn, decode, encode, trees, warn_corrupt};
use crate::time::{Clock, Timestamp};

type Result<T, E = ThreadError> = std::result::Result<T, E>;

/// Lock stripes: cache fills of different threads rarely wait on each other.
const STRIPES: usize = 64;

/// Threads the sweeper removes per transaction.
const SWEEP_BATCH: usize = 256;

/// Where [`Threads::write_turns`] writes: a thread to continue, or one to start.
#[derive(Clone, Debug)]
pub enum ThreadTarget {
    Existing(ThreadId),
    New(NewThread),
}

/// Conversation threads; cheap to clone.
#[derive(Clone)]
pub struct Threads {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Replaced when `limits.yaml` is reloaded; read for each operation.
    config: RwLock<MemoryConfig>,
    clock: Arc<dyn Clock>,
    stripes: Vec<Mutex<()>>,
    cache: ThreadCache,
}

impl Threads {
    /// Conversation memory in `store`, with `limits.yaml`'s `threads:` section.
    pub fn new(store: Store, config: MemoryConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config: RwLock::new(config),
                clock,
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                cache: ThreadCache::new(),
            }),
        }
    }

    /// The `threads:` section in force now.
    pub fn config(&self) -> MemoryConfig {
        self.inner.config()
    }

    /// Takes a reloaded `threads:` section: TTLs and the turn cap apply from the
    /// next operation on.
    pub fn set_config(&self, config: MemoryConfig) {
        *crate::util::write(&self.inner.config) = config;
    }

    /// Starts a thread; returns once it is durable.
    pub async fn create(&self, new: NewThread) -> Result<ThreadId> {
        let (id, _) = self.write_turns(ThreadTarget::New(new), Vec::new()).await?;
        Ok(id)
    }

    /// Appends a turn, stamped with the clock's time; returns once it is
    /// durable. Refreshes the thread's expiry.
    pub async fn append(&self, id: &ThreadId, turn: NewTurn) -> Result<AppendOutcome> {
        let (_, outcome) = self
            .write_turns(ThreadTarget::Existing(*id), vec![turn])
            .await?;
        Ok(outcome)
    }

    /// Writes `turns` to a thread — starting it first for
    /// [`ThreadTarget::New`] — in ONE transaction: summary, turns and
    /// recency index land together or not at all, so an exchange is never
    /// half-written. All the turns or none: refused with
    /// [`ThreadError::TooManyTurns`] when they do not all fit. Returns once
    /// the write is durable.
    pub async fn write_turns(
        &self,
        target: ThreadTarget,
        turns: Vec<NewTurn>,
    ) -> Result<(ThreadId, AppendOutcome)> {
        let staged = self.stage_turns(target, turns);
        self.inner.store.write(move |txn| staged.apply(txn)).await
    }

    /// [`Threads::write_turns`] made ready for a transaction that also
    /// carries other writes (the ledger records of the call that answered).
    pub fn stage_turns(&self, target: ThreadTarget, turns: Vec<NewTurn>) -> StagedTurns {
        let id = match &target {
            ThreadTarget::Existing(id) => *id,
            ThreadTarget::New(_) => ThreadId::new(),
        };
        StagedTurns {
            inner: Arc::clone(&self.inner),
            now: self.inner.clock.now(),
            target,
            id,
            turns,
        }
    }

    /// Drops the cached threads: for tests that write to the store behind
    /// `Threads`' back.
    #[cfg(test)]
    pub(crate) fn forget_cached(&self) {
        self.inner.cache.clear();
    }

    /// Reports a store that refuses writes (every write answered so far is
    /// durable already).
    pub async fn flush(&self) -> Result<()> {
        Ok(self.inner.store.flush().await?)
    }

    /// A live thread's summary (no turns).
    pub fn summary(&self, id: &ThreadId) -> Result<ThreadSummary> {
        match self.inner.cache.get(id) {
            Some(cached) => {
                self.inner.check_live(id, &cached.summary)?;
                Ok(cached.summary.clone())
            }
            None => self.inner.live_summary(&self.inner.store.read()?, id),
        }
    }

    /// A live thread with its turns, oldest first. A corrupt turn is skipped.
    ///
    /// Served from the cache when the thread is in it; otherwise read from
    /// one snapshot and cached — under the thread's stripe lock, which the
    /// writer's commit hooks also take, so a write that commits meanwhile
    /// either is in the snapshot or updates the cached copy after it.
    pub fn get(&self, id: &ThreadId) -> Result<Thread> {
        if let Some(thread) = self.cached_copy(id) {
            return thread;
        }
        let _guard = self.inner.lock(id);
        // Another caller may have filled it while this one waited.
        if let Some(thread) = self.cached_copy(id) {
            return thread;
        }
        let snapshot = self.inner.store.read()?;
        let thread = Thread {
            summary: self.inner.live_summary(&snapshot, id)?,
            turns: turns(&snapshot, id)?,
        };
        let copy = CachedThread {
            summary: thread.summary.clone(),
            turns: thread.turns.clone(),
        };
        self.inner.cache.put(*id, copy);
        Ok(thread)
    }

    /// The cached copy of a thread, if it is cached: refused if expired.
    fn cached_copy(&self, id: &ThreadId) -> Option<Result<Thread>> {
        let cached = self.inner.cache.get(id)?;
        Some(self.inner.check_live(id, &cached.summary).map(|()| Thread {
            summary: cached.summary.clone(),
            turns: cached.turns.clone(),
        }))
    }

    /// Live threads matching `filter`, most recently updated first.
    ///
    /// Walks the recency index newest first and stops at `limit` matches or
    /// at the first expired thread (all older ones are expired too). Only the
    /// `text` filter reads turns, and only for threads the other filters and
    /// the title did not already decide.
    pub fn list(&self, filter: &ThreadFilter) -> Result<Vec<ThreadSummary>> {
        let now = self.inner.clock.now();
        let limit = filter.effective_limit();
        let needle = filter.text.as_ref().map(|t| t.to_lowercase());
        let snapshot = self.inner.store.read()?;
        let mut found = Vec::new();
        for entry in snapshot.iter_rev(TreeId::ThreadsByUpdated) {
            let (key, _) = entry?;
            let Some((updated, id)) = parse_recency_key(&key) else {
                warn_corrupt(trees::THREADS_BY_UPDATED, &key, &"malformed key");
                continue;
            };
            if self.inner.expiry(updated) <= now {
                break;
            }
            let Some(summary) = self.inner.read_summary(&snapshot, &id)? else {
                continue;
            };
            if summary.updated != updated || !summary.matches(filter) {
                continue;
            }
            if let Some(needle) = &needle
                && !summary.title.to_lowercase().contains(needle)
                && !turns(&snapshot, &id)?
                    .iter()
                    .any(|t| t.text.to_lowercase().contains(needle))
            {
                continue;
            }
            found.push(summary);
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    /// The workflow state a multi-step tool saved in this thread, if any.
    pub fn workflow_state(&self, id: &ThreadId, tool: &str) -> Result<Option<Value>> {
        let snapshot = self.inner.store.read()?;
        self.inner.live_summary(&snapshot, id)?;
        let key = workflow_key(id, tool);
        Ok(snapshot
            .get(TreeId::Workflow, &key)?
            .and_then(|bytes| decode(trees::WORKFLOW, &key, &bytes)))
    }

    /// Saves a tool's workflow state in this thread, durably.
    pub async fn set_workflow_state(&self, id: &ThreadId, tool: &str, state: &Value) -> Result<()> {
        let value = encode(state)?;
        let key = workflow_key(id, tool);
        let (inner, id) = (Arc::clone(&self.inner), *id);
        self.inner
            .store
            .write(move |txn| {
                let summary = inner.txn_summary(txn, &id)?.ok_or(ThreadError::NotFound {
                    id,
                    ttl: inner.config().ttl(),
                })?;
                inner.check_live(&id, &summary)?;
                txn.insert(TreeId::Workflow, &key, &value)?;
                Ok(())
            })
            .await
    }

    /// Forgets a tool's workflow state in this thread, durably.
    pub async fn clear_workflow_state(&self, id: &ThreadId, tool: &str) -> Result<()> {
        let key = workflow_key(id, tool);
        self.inner
            .store
            .write(move |txn| Ok(txn.remove(TreeId::Workflow, &key)?))
            .await
    }

    /// Removes every expired thread (summary, turns, workflow state, index
    /// entry), oldest first, a batch per transaction; returns how many it
    /// removed.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let mut removed = 0;
        loop {
            let (expired, malformed) = self.expired_batch()?;
            if expired.is_empty() && malformed.is_empty() {
                return Ok(removed);
            }
            let inner = Arc::clone(&self.inner);
            removed += self
                .inner
                .store
                .write(move |txn| inner.remove_expired(txn, &expired, &malformed))
                .await?;
        }
    }

    /// Up to a batch of index entries whose threads have expired, and the
    /// malformed index keys met on the way.
    #[allow(clippy::type_complexity)]
    fn expired_batch(&self) -> Result<(Vec<(Timestamp, ThreadId)>, Vec<Vec<u8>>)> {
        let now = self.inner.clock.now();
        let snapshot = self.inner.store.read()?;
        let mut expired = Vec::new();
        let mut malformed = Vec::new();
        for entry in snapshot.iter(TreeId::ThreadsByUpdated) {
            let (key, _) = entry?;
            let Some((updated, id)) = parse_recency_key(&key) else {
                warn_corrupt(
                    trees::THREADS_BY_UPDATED,
                    &key,
                    &"malformed key; removing it",
                );
                malformed.push(key.to_vec());
                continue;
            };
            if self.inner.expiry(updated) > now || expired.len() >= SWEEP_BATCH {
                break;
            }
            expired.push((updated, id));
        }
        Ok((expired, malformed))
    }
}

/// Turns ready for a transaction ([`Threads::stage_turns`]).
pub struct StagedTurns {
    inner: Arc<Inner>,
    target: ThreadTarget,
    id: ThreadId,
    turns: Vec<NewTurn>,
    now: Timestamp,
}

impl StagedTurns {
    /// Writes the turns in `txn` (what [`Threads::write_turns`] commits).
    pub fn apply(&self, txn: &mut Txn<'_>) -> Result<(ThreadId, AppendOutcome)> {
        self.inner
            .write_turns(txn, &self.target, self.id, &self.turns, self.now)
    }
}

impl Inner {
    fn config(&self) -> MemoryConfig {
        crate::util::read(&self.config).clone()
    }

    /// [`Threads::write_turns`] in the writer's transaction.
    fn write_turns(
        self: &Arc<Self>,
        txn: &mut Txn<'_>,
        target: &ThreadTarget,
        id: ThreadId,
        turns: &[NewTurn],
        now: Timestamp,
    ) -> Result<(ThreadId, AppendOutcome)> {
        let (mut summary, old_recency) = match target {
            ThreadTarget::Existing(_) => {
                let summary = self.txn_summary(txn, &id)?.ok_or(ThreadError::NotFound {
                    id,
                    ttl: self.config().ttl(),
                })?;
                self.check_live(&id, &summary)?;
                let old = recency_key(summary.updated, &id);
                (summary, Some(old))
            }
            ThreadTarget::New(new) => (
                ThreadSummary {
                    id,
                    title: title_from(&new.first_prompt),
                    created: now,
                    updated: now,
                    expires: self.expiry(now),
                    session_id: new.session_id.clone(),
                    client: new.client.clone(),
                    cwd: new.cwd.clone(),
                    parent: new.parent,
                    tools: vec![new.tool.clone()],
                    models: Vec::new(),
                    turn_count: 0,
                },
                None,
            ),
        };
        let max = self.config().max_turns;
        let adding = u32::try_from(turns.len()).unwrap_or(u32::MAX);
        if summary.turn_count.saturating_add(adding) > max {
            return Err(ThreadError::TooManyTurns { id, max });
        }
        let now = now.max(summary.updated);
        // All of this write's turns are one value under the first one's index
        // (store.rs, key layout): one key per exchange.
        let first_index = summary.turn_count;
        let mut stored = Vec::with_capacity(turns.len());
        for turn in turns {
            let turn = Turn {
                tokens: turn.tokens.unwrap_or_else(|| estimate_tokens(&turn.text)),
                role: turn.role,
                text: turn.text.clone(),
                tool: turn.tool.clone(),
                model: turn.model.clone(),
                provider: turn.provider.clone(),
                files: turn.files.clone(),
                images: turn.images.clone(),
                time: now,
            };
            if !summary.tools.contains(&turn.tool) {
                summary.tools.push(turn.tool.clone());
            }
            if let Some(model) = &turn.model
                && !summary.models.contains(model)
            {
                summary.models.push(model.clone());
            }
            stored.push(turn);
            summary.turn_count += 1;
        }
        match stored.as_slice() {
            [] => {}
            [one] => txn.insert(TreeId::Turns, &turn_key(&id, first_index), &encode(one)?)?,
            all => txn.insert(TreeId::Turns, &turn_key(&id, first_index), &encode(all)?)?,
        }
        summary.updated = now;
        summary.expires = self.expiry(now);
        txn.insert(TreeId::Threads, id.as_bytes(), &encode(&summary)?)?;
        if let Some(old) = &old_recency {
            txn.remove(TreeId::ThreadsByUpdated, old)?;
        }
        txn.insert(TreeId::ThreadsByUpdated, &recency_key(now, &id), &[])?;
        let outcome = AppendOutcome {
            turn_count: summary.turn_count,
            remaining_turns: max.saturating_sub(summary.turn_count),
        };
        let inner = Arc::clone(self);
        let is_new = old_recency.is_none();
        txn.on_commit(move || inner.cache_written(id, summary, stored, first_index, is_new));
        Ok((id, outcome))
    }

    /// Brings the cached copy of a thread up to a committed write. A copy
    /// cached from a snapshot taken before the write lacks its turns (they
    /// are added); one taken after already has them; anything else is dropped.
    fn cache_written(
        &self,
        id: ThreadId,
        summary: ThreadSummary,
        added: Vec<Turn>,
        first_index: u32,
        is_new: bool,
    ) {
        let _guard = self.lock(&id);
        if is_new {
            self.cache.put(
                id,
                CachedThread {
                    summary,
                    turns: added,
                },
            );
            return;
        }
        let Some(cached) = self.cache.take(&id) else {
            return;
        };
        if cached.summary.turn_count == summary.turn_count {
            let cached = Arc::try_unwrap(cached).unwrap_or_else(|shared| CachedThread {
                summary: shared.summary.clone(),
                turns: shared.turns.clone(),
            });
            self.cache.put(id, cached);
        } else if cached.summary.turn_count == first_index {
            let mut turns = match Arc::try_unwrap(cached) {
                Ok(cached) => cached.turns,
                Err(shared) => shared.turns.clone(),
            };
            turns.extend(added);
            self.cache.put(id, CachedThread { summary, turns });
        }
    }

    /// Removes the expired threads of a batch in the writer's transaction;
    /// returns how many threads it removed.
    fn remove_expired(
        self: &Arc<Self>,
        txn: &mut Txn<'_>,
        expired: &[(Timestamp, ThreadId)],
        malformed: &[Vec<u8>],
    ) -> Result<usize> {
        for key in malformed {
            txn.remove(TreeId::ThreadsByUpdated, key)?;
        }
        let mut removed = Vec::new();
        for (updated, id) in expired {
            let index_key = recency_key(*updated, id);
            txn.remove(TreeId::ThreadsByUpdated, &index_key)?;
            let summary = self.txn_summary(txn, id)?;
            if let Some(summary) = &summary
                && summary.updated != *updated
            {
                // A stale index entry (the thread moved on); drop only the entry.
                continue;
            }
            txn.remove(TreeId::Threads, id.as_bytes())?;
            for tree in [TreeId::Turns, TreeId::Workflow] {
                for key in txn.keys_with_prefix(tree, id.as_bytes())? {
                    txn.remove(tree, &key)?;
                }
            }
            if summary.is_some() {
                removed.push(*id);
            }
        }
        let count = removed.len();
        let inner = Arc::clone(self);
        txn.on_commit(move || {
            for id in removed {
                let _guard = inner.lock(&id);
                inner.cache.remove(&id);
            }
        });
        Ok(count)
    }

    fn expiry(&self, updated: Timestamp) -> Timestamp {
        updated.saturating_add(self.config().ttl())
    }

    /// The summary of a thread that exists and has not expired.
    fn live_summary(&self, snapshot: &Snapshot, id: &ThreadId) -> Result<ThreadSummary> {
        let summary = self
            .read_summary(snapshot, id)?
            .ok_or(ThreadError::NotFound {
                id: *id,
                ttl: self.config().ttl(),
            })?;
        self.check_live(id, &summary)?;
        Ok(summary)
    }

    /// Refuses a thread that has expired (and not been swept yet).
    fn check_live(&self, id: &ThreadId, summary: &ThreadSummary) -> Result<()> {
        let expires = self.expiry(summary.updated);
        if expires <= self.clock.now() {
            return Err(ThreadError::Expired {
                id: *id,
                ttl: self.config().ttl(),
                expired_at: expires,
            });
        }
        Ok(())
    }

    /// A stored summary with `expires` filled in; `None` if missing or corrupt.
    fn read_summary(&self, snapshot: &Snapshot, id: &ThreadId) -> Result<Option<ThreadSummary>> {
        let bytes = snapshot.get(TreeId::Threads, id.as_bytes())?;
        Ok(self.decode_summary(id, bytes.as_deref()))
    }

    /// [`Inner::read_summary`] in the writer's transaction.
    fn txn_summary(&self, txn: &mut Txn<'_>, id: &ThreadId) -> Result<Option<ThreadSummary>> {
        let bytes = txn.get(TreeId::Threads, id.as_bytes())?;
        Ok(self.decode_summary(id, bytes.as_deref()))
    }

    fn decode_summary(&self, id: &ThreadId, bytes: Option<&[u8]>) -> Option<ThreadSummary> {
        decode::<ThreadSummary>(trees::THREADS, id.as_bytes(), bytes?).map(|mut summary| {
            summary.expires = self.expiry(summary.updated);
            summary
        })
    }

    fn lock(&self, id: &ThreadId) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        let stripe = (hasher.finish() % STRIPES as u64) as usize;
        crate::util::lock(&self.stripes[stripe])
    }
}

fn turns(snapshot: &Snapshot, id: &ThreadId) -> Result<Vec<Turn>> {
    let mut turns = Vec::new();
    for entry in snapshot.scan_prefix(TreeId::Turns, id.as_bytes()) {
        let (key, bytes) = entry?;
        // Several turns written together, or one.
        if bytes.first() == Some(&b'[') {
            if let Some(several) = decode::<Vec<Turn>>(trees::TURNS, &key, &bytes) {
                turns.extend(several);
            }
        } else if let Some(turn) = decode(trees::TURNS, &key, &bytes) {
            turns.push(turn);
        }
    }
    Ok(turns)
}

fn turn_key(id: &ThreadId, index: u32) -> [u8; 20] {
    let mut key = [0; 20];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(&index.to_be_bytes());
    key
}

fn recency_key(updated: Timestamp, id: &ThreadId) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&updated.as_millis().to_be_bytes());
    key[8..].copy_from_slice(id.as_bytes());
    key
}

fn parse_recency_key(key: &[u8]) -> Option<(Timestamp, ThreadId)> {
    let millis: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let id = key.get(8..).filter(|rest| rest.len() == 16)?;
    Some((
        Timestamp::from_millis(u64::from_be_bytes(millis)),
        ThreadId::from_slice(id)?,
    ))
}

fn workflow_key(id: &ThreadId, tool: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + tool.len());
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(tool.as_bytes());
    key
}
