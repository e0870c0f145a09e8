//! A bounded in-memory copy of the threads zend used last, so continuing a
//! thread does not read and decode its turns (and its summary, twice) from
//! the store on every call.
//!
//! zend is the store's only writer (one zend per store), and every write to
//! the `threads` and `turns` trees goes through [`super::Threads`], which
//! keeps this cache in step **under the thread's stripe lock**: the store's
//! writer updates an entry after the write's commit succeeded (a failed
//! commit changes nothing here), a removal drops it, and a miss is filled
//! from a snapshot only while holding the same lock — so an entry is never
//! older than the store, nor ahead of what is durable.
//!
//! The cache holds decoded values exactly as a read from the store would return
//! them (a corrupt turn skipped by the read is absent here too). It is bounded
//! by thread count and by an estimate of the bytes the turns hold; when
//! either bound is passed, the least recently used half is dropped at once
//! (an O(n) pass every n/2 insertions), and a thread too large for a quarter
//! of the budget is not cached at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{ThreadId, ThreadSummary, Turn};

/// Threads kept at most.
const MAX_THREADS: usize = 512;
/// Estimated bytes of turns kept at most.
const MAX_BYTES: usize = 4 << 20;
/// Fixed cost counted per turn and per thread on top of their text.
const TURN_OVERHEAD: usize = 160;
const THREAD_OVERHEAD: usize = 320;

/// One thread as the store holds it: its summary (with `expires` filled in
/// as a read fills it) and its turns, oldest first.
#[derive(Debug)]
pub(super) struct CachedThread {
    pub summary: ThreadSummary,
    pub turns: Vec<Turn>,
}

pub(super) struct ThreadCache {
    inner: Mutex<Inner>,
    max_threads: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<ThreadId, Entry>,
    bytes: usize,
    tick: u64,
}

struct Entry {
    thread: Arc<CachedThread>,
    bytes: usize,
    used: u64,
}

impl ThreadCache {
    pub fn new() -> Self {
        Self::with_bounds(MAX_THREADS, MAX_BYTES)
    }

    fn with_bounds(max_threads: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_threads: max_threads.max(2),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::util::lock(&self.inner)
    }

    pub fn get(&self, id: &ThreadId) -> Option<Arc<CachedThread>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.map.get_mut(id)?;
        entry.used = tick;
        Some(Arc::clone(&entry.thread))
    }

    /// Removes and returns the entry; the caller (holding the thread's lock)
    /// puts the thread back once its write has committed.
    pub fn take(&self, id: &ThreadId) -> Option<Arc<CachedThread>> {
        let mut inner = self.lock();
        let entry = inner.map.remove(id)?;
        inner.bytes -= entry.bytes;
        Some(entry.thread)
    }

    pub fn remove(&self, id: &ThreadId) {
        self.take(id);
    }

    /// Caches `thread` (replacing any entry), evicting the least recently
    /// used half when a bound is passed.
    pub fn put(&self, id: ThreadId, thread: CachedThread) {
        let bytes = estimate_bytes(&thread);
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(&id) {
            inner.bytes -= old.bytes;
        }
        if bytes > self.max_bytes / 4 {
            return;
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.bytes += bytes;
        inner.map.insert(
            id,
            Entry {
                thread: Arc::new(thread),
                bytes,
                used,
            },
        );
        if inner.map.len() > self.max_threads || inner.bytes > self.max_bytes {
            evict_older_half(&mut inner);
        }
    }

    #[cfg(test)]
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.bytes = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

fn evict_older_half(inner: &mut Inner) {
    let mut ticks: Vec<u64> = inner.map.values().map(|e| e.used).collect();
    let middle = ticks.len() / 2;
    let (_, &mut cutoff, _) = ticks.select_nth_unstable(middle);
    let mut freed = 0;
    inner.map.retain(|_, entry| {
        let keep = entry.used >= cutoff;
        if !keep {
            freed += entry.bytes;
        }
        keep
    });
    inner.bytes -= freed;
}

fn estimate_bytes(thread: &CachedThread) -> usize {
    let summary = &thread.summary;
    let summary_bytes = THREAD_OVERHEAD
        + summary.title.len()
        + summary.tools.iter().map(String::len).sum::<usize>()
        + summary.models.iter().map(String::len).sum::<usize>();
    let turn_bytes: usize = thread
        .turns
        .iter()
        .map(|turn| {
            TURN_OVERHEAD
                + turn.text.len()
                + turn.tool.len()
                + turn.model.as_ref().map_or(0, String::len)
                + turn.provider.as_ref().map_or(0, String::len)
                + turn.files.iter().map(String::len).sum::<usize>()
                + turn.images.iter().map(String::len).sum::<usize>()
        })
        .sum();
    summary_bytes + turn_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Role;
    use crate::time::Timestamp;

    fn thread(text_len: usize) -> CachedThread {
        let now = Timestamp::from_millis(1);
        CachedThread {
            summary: ThreadSummary {
                id: ThreadId::new(),
                title: "t".into(),
                created: now,
                updated: now,
                expires: now,
                session_id: "s".into(),
                client: "c".into(),
                cwd: None,
                parent: None,
                tools: vec!["chat".into()],
                models: Vec::new(),
                turn_count: 1,
            },
            turns: vec![Turn {
                role: Role::User,
                text: "x".repeat(text_len),
                tool: "chat".into(),
                model: None,
                provider: None,
                files: Vec::new(),
                images: Vec::new(),
                tokens: 1,
                time: now,
            }],
        }
    }

    #[test]
    fn the_least_recently_used_half_goes_when_the_count_bound_is_passed() {
        let cache = ThreadCache::with_bounds(4, usize::MAX);
        let ids: Vec<ThreadId> = (0..4)
            .map(|_| {
                let t = thread(10);
                let id = t.summary.id;
                cache.put(id, t);
                id
            })
            .collect();
        // Touch the first two: the last two are now the least recently used.
        assert!(cache.get(&ids[0]).is_some());
        assert!(cache.get(&ids[1]).is_some());
        cache.put(ThreadId::new(), thread(10));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&ids[0]).is_some());
        assert!(cache.get(&ids[1]).is_some());
        assert!(cache.get(&ids[2]).is_none());
        assert!(cache.get(&ids[3]).is_none());
    }

    #[test]
    fn the_byte_bound_holds_and_huge_threads_are_not_cached() {
        let cache = ThreadCache::with_bounds(1000, 64 * 1024);
        let huge = thread(20 * 1024);
        let huge_id = huge.summary.id;
        cache.put(huge_id, huge);
        assert!(
            cache.get(&huge_id).is_none(),
            "over a quarter of the budget"
        );
        for _ in 0..100 {
            cache.put(ThreadId::new(), thread(2000));
            assert!(cache.lock().bytes <= 64 * 1024);
        }
        let inner = cache.lock();
        let counted: usize = inner.map.values().map(|e| e.bytes).sum();
        assert_eq!(counted, inner.bytes, "the byte count follows the entries");
    }

    #[test]
    fn take_and_put_replace_an_entry() {
        let cache = ThreadCache::new();
        let t = thread(10);
        let id = t.summary.id;
        cache.put(id, t);
        let taken = cache.take(&id).expect("cached");
        assert!(cache.get(&id).is_none());
        assert_eq!(cache.lock().bytes, 0);
        let mut again = Arc::try_unwrap(taken).expect("only the caller holds it");
        again.turns.push(again.turns[0].clone());
        cache.put(id, again);
        assert_eq!(cache.get(&id).expect("back").turns.len(), 2);
        cache.remove(&id);
        assert!(cache.get(&id).is_none());
    }
}
