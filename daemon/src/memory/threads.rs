//! [`Threads`]: creating, continuing, reading, listing and expiring threads.
//!
//! Writes to one thread hold that thread's stripe lock for the read (summary)
//! → write (summary, turn, recency index) sequence, and the writes go in one
//! store batch (one log record), so a crash never leaves a turn without its
//! summary. The
//! lock is a std mutex held only around synchronous sled calls, never across
//! an await; the flush that makes the write durable happens after it.
//!
//! Recently used threads are also kept decoded in memory ([`super::cache`]),
//! updated under the same stripe lock, so continuing a thread reads nothing
//! from sled.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::cache::{CachedThread, ThreadCache};
use super::history::estimate_tokens;
use super::thread::title_from;
use super::{
    AppendOutcome, MemoryConfig, NewThread, NewTurn, Thread, ThreadError, ThreadFilter, ThreadId,
    ThreadSummary, Turn,
};
use crate::store::{
    Batch, Bytes, Clock, Timestamp, Tree, TreeId, Wal, decode, encode, trees, warn_corrupt,
};

type Result<T, E = ThreadError> = std::result::Result<T, E>;

/// Lock stripes: appends to different threads rarely wait on each other.
const STRIPES: usize = 64;

/// Threads the sweeper removes per batch before it lets others in.
const SWEEP_BATCH: usize = 256;

/// The trees memory owns (see the key layout in [`crate::store`]).
pub(crate) struct ThreadTrees {
    pub summaries: Tree,
    pub turns: Tree,
    pub by_updated: Tree,
    pub workflow: Tree,
}

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
    trees: ThreadTrees,
    wal: Wal,
    config: MemoryConfig,
    clock: Arc<dyn Clock>,
    stripes: Vec<Mutex<()>>,
    cache: ThreadCache,
}

impl Threads {
    pub(crate) fn new(
        trees: ThreadTrees,
        wal: Wal,
        config: MemoryConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                trees,
                wal,
                config,
                clock,
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                cache: ThreadCache::new(),
            }),
        }
    }

    pub fn config(&self) -> &MemoryConfig {
        &self.inner.config
    }

    /// Starts a thread and makes it durable.
    pub async fn create(&self, new: NewThread) -> Result<ThreadId> {
        let (id, _) = self.write_turns(ThreadTarget::New(new), Vec::new())?;
        self.inner.wal.durable().await?;
        Ok(id)
    }

    /// Appends a turn, stamped with the clock's time, and makes it durable.
    /// Refreshes the thread's expiry.
    pub async fn append(&self, id: &ThreadId, turn: NewTurn) -> Result<AppendOutcome> {
        let (_, outcome) = self.write_turns(ThreadTarget::Existing(*id), vec![turn])?;
        self.inner.wal.durable().await?;
        Ok(outcome)
    }

    /// Writes `turns` to a thread — starting it first for
    /// [`ThreadTarget::New`] — in ONE store batch: summary, turns and
    /// recency index land together or not at all, so an exchange is never
    /// half-written. All the turns or none: refused with
    /// [`ThreadError::TooManyTurns`] when they do not all fit.
    ///
    /// **Not durable yet:** the caller must await [`crate::store::Store::flush`]
    /// before telling a client about it (one flush can then cover this and the
    /// ledger records of the same call). `create` and `append` do both.
    pub fn write_turns(
        &self,
        target: ThreadTarget,
        turns: Vec<NewTurn>,
    ) -> Result<(ThreadId, AppendOutcome)> {
        let now = self.inner.clock.now();
        let id = match &target {
            ThreadTarget::Existing(id) => *id,
            ThreadTarget::New(_) => ThreadId::new(),
        };
        let _guard = self.lock(&id);
        let (mut summary, old_recency) = match target {
            ThreadTarget::Existing(id) => {
                let summary = self.summary(&id)?;
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
                    session_id: new.session_id,
                    client: new.client,
                    cwd: new.cwd,
                    parent: new.parent,
                    tools: vec![new.tool],
                    models: Vec::new(),
                    turn_count: 0,
                },
                None,
            ),
        };
        let max = self.inner.config.max_turns;
        let adding = u32::try_from(turns.len()).unwrap_or(u32::MAX);
        if summary.turn_count.saturating_add(adding) > max {
            return Err(ThreadError::TooManyTurns { id, max });
        }
        let now = now.max(summary.updated);
        // All of this write's turns are one value under the first one's index
        // (store.rs, key layout): one key and one sled insert per exchange.
        let first_index = summary.turn_count;
        let mut stored = Vec::with_capacity(turns.len());
        for turn in turns {
            let turn = Turn {
                tokens: turn.tokens.unwrap_or_else(|| estimate_tokens(&turn.text)),
                role: turn.role,
                text: turn.text,
                tool: turn.tool,
                model: turn.model,
                provider: turn.provider,
                files: turn.files,
                images: turn.images,
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
        let is_new = old_recency.is_none();
        let turns_value = match stored.as_slice() {
            [] => None,
            [one] => Some(encode(one)?),
            all => Some(encode(all)?),
        };
        summary.updated = now;
        let summary_value = encode(&summary)?;
        let new_recency = recency_key(now, &id);
        // Turns before the summary that counts them (see `Wal::commit`).
        let mut batch = Batch::new();
        if let Some(value) = turns_value {
            batch.insert(TreeId::Turns, &turn_key(&id, first_index), value);
        }
        batch.insert(TreeId::Threads, id.as_bytes(), summary_value);
        if let Some(old) = &old_recency {
            batch.remove(TreeId::ThreadsByUpdated, old);
        }
        batch.insert(TreeId::ThreadsByUpdated, &new_recency, &[][..]);
        // The cached copy goes first, so a failed commit leaves none behind.
        let cached = self.inner.cache.take(&id);
        self.inner.wal.commit(&batch)?;
        let outcome = AppendOutcome {
            turn_count: summary.turn_count,
            remaining_turns: max.saturating_sub(summary.turn_count),
        };
        // A new thread is cached whole; an existing one only if it was (its
        // older turns are not at hand otherwise).
        let earlier = match cached {
            Some(cached) => Some(match Arc::try_unwrap(cached) {
                Ok(cached) => cached.turns,
                Err(shared) => shared.turns.clone(),
            }),
            None if is_new => Some(Vec::new()),
            None => None,
        };
        if let Some(mut turns) = earlier {
            turns.extend(stored);
            summary.expires = self.expiry(summary.updated);
            self.inner.cache.put(id, CachedThread { summary, turns });
        }
        Ok((id, outcome))
    }

    /// Drops the cached threads: for tests that write to sled behind
    /// `Threads`' back.
    #[cfg(test)]
    pub(crate) fn forget_cached(&self) {
        self.inner.cache.clear();
    }

    /// Makes every write made so far durable (see [`crate::store::Store::flush`]).
    pub async fn flush(&self) -> Result<()> {
        Ok(self.inner.wal.durable().await?)
    }

    /// A live thread's summary (no turns).
    pub fn summary(&self, id: &ThreadId) -> Result<ThreadSummary> {
        match self.inner.cache.get(id) {
            Some(cached) => {
                self.check_live(id, &cached.summary)?;
                Ok(cached.summary.clone())
            }
            None => self.live_summary(id),
        }
    }

    /// A live thread with its turns, oldest first. A corrupt turn is skipped.
    ///
    /// Served from the cache when the thread is in it; otherwise read from
    /// sled — under the thread's lock, so no write can slip in between the
    /// read and the caching of what it read — and cached.
    pub fn get(&self, id: &ThreadId) -> Result<Thread> {
        if let Some(thread) = self.cached_copy(id) {
            return thread;
        }
        let _guard = self.lock(id);
        // Another caller may have filled it while this one waited.
        if let Some(thread) = self.cached_copy(id) {
            return thread;
        }
        let thread = Thread {
            summary: self.live_summary(id)?,
            turns: self.turns(id)?,
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
        Some(self.check_live(id, &cached.summary).map(|()| Thread {
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
        let mut found = Vec::new();
        for entry in self.inner.trees.by_updated.iter_rev() {
            let (key, _) = entry?;
            let Some((updated, id)) = parse_recency_key(&key) else {
                warn_corrupt(trees::THREADS_BY_UPDATED, &key, &"malformed key");
                continue;
            };
            if self.expiry(updated) <= now {
                break;
            }
            let Some(summary) = self.read_summary(&id)? else {
                continue;
            };
            if summary.updated != updated || !summary.matches(filter) {
                continue;
            }
            if let Some(needle) = &needle
                && !summary.title.to_lowercase().contains(needle)
                && !self
                    .turns(&id)?
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
        self.live_summary(id)?;
        let key = workflow_key(id, tool);
        Ok(self
            .inner
            .trees
            .workflow
            .get(&key)?
            .and_then(|bytes| decode(trees::WORKFLOW, &key, &bytes)))
    }

    /// Saves a tool's workflow state in this thread, durably.
    pub async fn set_workflow_state(&self, id: &ThreadId, tool: &str, state: &Value) -> Result<()> {
        let value = encode(state)?;
        {
            let _guard = self.lock(id);
            self.live_summary(id)?;
            let mut batch = Batch::new();
            batch.insert(TreeId::Workflow, &workflow_key(id, tool), value);
            self.inner.wal.commit(&batch)?;
        }
        self.inner.wal.durable().await?;
        Ok(())
    }

    /// Forgets a tool's workflow state in this thread, durably.
    pub async fn clear_workflow_state(&self, id: &ThreadId, tool: &str) -> Result<()> {
        let mut batch = Batch::new();
        batch.remove(TreeId::Workflow, &workflow_key(id, tool));
        self.inner.wal.commit(&batch)?;
        self.inner.wal.durable().await?;
        Ok(())
    }

    /// Removes every expired thread (summary, turns, workflow state, index
    /// entry), oldest first, in batches; returns how many it removed. Blocking:
    /// call it from `spawn_blocking` (as [`super::spawn_sweeper`] does).
    pub fn sweep_expired(&self) -> Result<usize> {
        let mut removed = 0;
        loop {
            let batch = self.expired_batch()?;
            if batch.is_empty() {
                return Ok(removed);
            }
            for (updated, id) in batch {
                if self.remove_if_expired(updated, &id)? {
                    removed += 1;
                }
            }
        }
    }

    /// Up to a batch of index entries whose threads have expired.
    fn expired_batch(&self) -> Result<Vec<(Timestamp, ThreadId)>> {
        let now = self.inner.clock.now();
        let mut batch = Vec::new();
        for entry in self.inner.trees.by_updated.iter() {
            let (key, _) = entry?;
            let Some((updated, id)) = parse_recency_key(&key) else {
                warn_corrupt(
                    trees::THREADS_BY_UPDATED,
                    &key,
                    &"malformed key; removing it",
                );
                let mut batch = Batch::new();
                batch.remove(TreeId::ThreadsByUpdated, &key);
                self.inner.wal.commit(&batch)?;
                continue;
            };
            if self.expiry(updated) > now || batch.len() >= SWEEP_BATCH {
                break;
            }
            batch.push((updated, id));
        }
        Ok(batch)
    }

    fn remove_if_expired(&self, updated: Timestamp, id: &ThreadId) -> Result<bool> {
        let _guard = self.lock(id);
        let trees = &self.inner.trees;
        let index_key = recency_key(updated, id);
        let summary = self.read_summary(id)?;
        if let Some(summary) = &summary
            && summary.updated != updated
        {
            // A stale index entry (the thread moved on); drop only the entry.
            let mut batch = Batch::new();
            batch.remove(TreeId::ThreadsByUpdated, &index_key);
            self.inner.wal.commit(&batch)?;
            return Ok(false);
        }
        let turn_keys = collect_keys(&trees.turns, id)?;
        let workflow_keys = collect_keys(&trees.workflow, id)?;
        let mut batch = Batch::new();
        batch.remove(TreeId::Threads, id.as_bytes());
        for key in &turn_keys {
            batch.remove(TreeId::Turns, key);
        }
        for key in &workflow_keys {
            batch.remove(TreeId::Workflow, key);
        }
        batch.remove(TreeId::ThreadsByUpdated, &index_key);
        self.inner.cache.remove(id);
        self.inner.wal.commit(&batch)?;
        Ok(summary.is_some())
    }

    fn expiry(&self, updated: Timestamp) -> Timestamp {
        updated.saturating_add(self.inner.config.ttl())
    }

    /// The summary of a thread that exists and has not expired.
    fn live_summary(&self, id: &ThreadId) -> Result<ThreadSummary> {
        let ttl = self.inner.config.ttl();
        let summary = self
            .read_summary(id)?
            .ok_or(ThreadError::NotFound { id: *id, ttl })?;
        self.check_live(id, &summary)?;
        Ok(summary)
    }

    /// Refuses a thread that has expired (and not been swept yet).
    fn check_live(&self, id: &ThreadId, summary: &ThreadSummary) -> Result<()> {
        let expires = self.expiry(summary.updated);
        if expires <= self.inner.clock.now() {
            return Err(ThreadError::Expired {
                id: *id,
                ttl: self.inner.config.ttl(),
                expired_at: expires,
            });
        }
        Ok(())
    }

    /// A stored summary with `expires` filled in; `None` if missing or corrupt.
    fn read_summary(&self, id: &ThreadId) -> Result<Option<ThreadSummary>> {
        let key = id.as_bytes();
        let Some(bytes) = self.inner.trees.summaries.get(key)? else {
            return Ok(None);
        };
        Ok(
            decode::<ThreadSummary>(trees::THREADS, key, &bytes).map(|mut summary| {
                summary.expires = self.expiry(summary.updated);
                summary
            }),
        )
    }

    fn turns(&self, id: &ThreadId) -> Result<Vec<Turn>> {
        let mut turns = Vec::new();
        for entry in self.inner.trees.turns.scan_prefix(id.as_bytes()) {
            let (key, bytes) = entry?;
            // Several turns written together, or one (schema 1 wrote only these).
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

    fn lock(&self, id: &ThreadId) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        let stripe = (hasher.finish() % STRIPES as u64) as usize;
        self.inner.stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn collect_keys(tree: &Tree, id: &ThreadId) -> Result<Vec<Bytes>> {
    tree.scan_prefix(id.as_bytes())
        .map(|entry| entry.map(|(key, _)| key))
        .collect::<Result<_, _>>()
        .map_err(ThreadError::from)
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
