//! The storage engine under the write-ahead log: a redb database, and in
//! memory the writes the log holds that redb does not have yet.
//!
//! A write ([`Engine::apply`], called by the log under its commit lock) only
//! goes into the *active* layer: an ordered map per tree, the value or a
//! tombstone. A checkpoint ([`super::wal`]) *freezes* the active layer when
//! it rotates the log, writes the frozen layer to redb in one durable
//! transaction ([`Engine::drain`]) and then forgets it. Reads see the active
//! layer over the frozen one over redb, so a reader never waits for a
//! checkpoint and never sees a write go missing while it is drained.
//!
//! Why not write redb per call: one redb transaction per call cost ~108 µs of
//! CPU, and sled (before) grew by ~3 MiB per 50k calls without bound
//! (BENCHMARKS.md, "The store engine"); a checkpoint's transaction covers
//! every write of ~5 s at ~32 µs per call's worth. The layers are bounded by
//! what one log file holds ([`super::wal::FILE_BYTES`]; a full file
//! checkpoints at once).
//!
//! Invariant: only the log's checkpoint and close freeze and drain (both
//! under its checkpoint lock), so the frozen layer changes only there.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::StoreError;
use super::wal::{Batch, TreeId};

/// Keys and values as the store hands them out; cheap to clone.
pub(crate) type Bytes = Arc<[u8]>;

pub(super) type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// Store-wide values (the schema version), written directly and durably.
pub(super) const META: Table = TableDefinition::new("meta");

/// redb's page cache. Small on purpose: a call reads one thread's turns once
/// (and the thread cache keeps hot threads), the OS page cache keeps the file
/// warm, and zend is a per-user background process that should stay small.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn table(tree: TreeId) -> Table {
    TableDefinition::new(tree.name())
}

type Layer = [BTreeMap<Bytes, Option<Bytes>>; TreeId::ALL.len()];

#[derive(Default)]
struct Layers {
    active: Layer,
    frozen: Layer,
}

pub(crate) struct Engine {
    db: Database,
    path: PathBuf,
    layers: Mutex<Layers>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Opens (or creates) the database file at `path`; fails at once with
    /// [`StoreError::Locked`] when another zend has it open.
    pub(crate) fn open(path: &Path) -> Result<Arc<Engine>, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: path.to_path_buf(),
                },
                source => StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        Ok(Arc::new(Engine {
            db,
            path: path.to_path_buf(),
            layers: Mutex::new(Layers::default()),
        }))
    }

    /// A tree's handle.
    pub(crate) fn tree(self: &Arc<Self>, id: TreeId) -> Tree {
        Tree {
            engine: Arc::clone(self),
            id,
        }
    }

    /// A store-wide value (written by [`Engine::put_meta`]).
    pub(crate) fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(table) = self.read_table(META)? else {
            return Ok(None);
        };
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Writes a store-wide value durably, now.
    pub(crate) fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.set_quick_repair(true);
        tx.open_table(META)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies a batch to the active layer, in order (the log calls this
    /// under its commit lock, after writing the record).
    pub(crate) fn apply(&self, batch: &Batch) {
        let mut layers = lock(&self.layers);
        for (tree, key, value) in batch.ops() {
            layers.active[tree.index()].insert(key.clone(), value.cloned());
        }
    }

    /// Moves the active layer under the frozen one: what the next
    /// [`Engine::drain`] writes. The log calls this when it rotates, so the
    /// frozen layer holds exactly the records of the files it may reuse once
    /// the drain is durable.
    pub(crate) fn freeze(&self) {
        let mut layers = lock(&self.layers);
        let Layers { active, frozen } = &mut *layers;
        for (active, frozen) in active.iter_mut().zip(frozen.iter_mut()) {
            if frozen.is_empty() {
                std::mem::swap(active, frozen);
            } else {
                frozen.append(active);
            }
        }
    }

    /// Whether a drain has something to write (tests).
    #[cfg(test)]
    pub(crate) fn has_frozen(&self) -> bool {
        lock(&self.layers).frozen.iter().any(|t| !t.is_empty())
    }

    /// Writes the frozen layer to redb in one durable transaction, then
    /// forgets it. On an error the layer stays (reads still see it) and the
    /// next drain writes it again.
    pub(crate) fn drain(&self) -> Result<(), StoreError> {
        let frozen: Vec<Vec<(Bytes, Option<Bytes>)>> = {
            let layers = lock(&self.layers);
            layers
                .frozen
                .iter()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .collect()
        };
        if frozen.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        // Saves the allocator state with the commit, so opening after a
        // `kill -9` does not walk the whole file to repair it.
        tx.set_quick_repair(true);
        for (tree, entries) in TreeId::ALL.iter().zip(&frozen) {
            if entries.is_empty() {
                continue;
            }
            let mut table = tx.open_table(table(*tree))?;
            for (key, value) in entries {
                match value {
                    Some(value) => {
                        table.insert(&**key, &**value)?;
                    }
                    None => {
                        table.remove(&**key)?;
                    }
                }
            }
        }
        tx.commit()?;
        let mut layers = lock(&self.layers);
        for tree in &mut layers.frozen {
            tree.clear();
        }
        Ok(())
    }

    /// Freezes and drains: everything applied so far is in redb, durably.
    pub(crate) fn persist(&self) -> Result<(), StoreError> {
        self.freeze();
        self.drain()
    }

    /// Bytes the database file takes.
    pub(crate) fn size_on_disk(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        {
            let layers = lock(&self.layers);
            let index = tree.index();
            if let Some(value) = layers.active[index]
                .get(key)
                .or_else(|| layers.frozen[index].get(key))
            {
                return Ok(value.clone());
            }
        }
        // Read after the layers: a drain that commits meanwhile has put what
        // the frozen layer held into redb first.
        let Some(table) = self.read_table(table(tree))? else {
            return Ok(None);
        };
        Ok(table.get(key)?.map(|v| Bytes::from(v.value())))
    }

    /// A table in a new read transaction (which the table keeps alive);
    /// `None` when nothing was ever written to it.
    fn read_table(&self, definition: Table) -> Result<Option<ReadTable>, StoreError> {
        match self.db.begin_read()?.open_table(definition) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn range(
        &self,
        tree: TreeId,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<Iter, StoreError> {
        let mut overlay: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
        {
            let layers = lock(&self.layers);
            let index = tree.index();
            for layer in [&layers.frozen[index], &layers.active[index]] {
                for (key, value) in layer.range::<[u8], _>((lower, upper)) {
                    overlay.insert(key.clone(), value.clone());
                }
            }
        }
        let mut overlay: Vec<(Bytes, Option<Bytes>)> = overlay.into_iter().collect();
        // The next entry is always the last one.
        if !reverse {
            overlay.reverse();
        }
        let disk = match self.read_table(table(tree))? {
            Some(table) => Some(table.range::<&[u8]>((lower, upper))?),
            None => None,
        };
        Ok(Iter {
            overlay,
            disk,
            next_disk: None,
            reverse,
            error: None,
        })
    }
}

/// One tree of the store: reads see the writes the log has applied, whether
/// or not a checkpoint has written them to redb yet. Writes go through a
/// [`Batch`] and the log.
#[derive(Clone)]
pub(crate) struct Tree {
    engine: Arc<Engine>,
    id: TreeId,
}

impl Tree {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        self.engine.get(self.id, key.as_ref())
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref();
        let end = prefix_end(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.iter_in(Bound::Included(prefix), upper, false)
    }

    /// Every entry from `from` on, in key order.
    pub(crate) fn range_from(&self, from: impl AsRef<[u8]>) -> Iter {
        self.iter_in(Bound::Included(from.as_ref()), Bound::Unbounded, false)
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Iter {
        self.iter_in(Bound::Unbounded, Bound::Unbounded, false)
    }

    /// Every entry, last key first.
    pub(crate) fn iter_rev(&self) -> Iter {
        self.iter_in(Bound::Unbounded, Bound::Unbounded, true)
    }

    fn iter_in(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>, reverse: bool) -> Iter {
        self.engine
            .range(self.id, lower, upper, reverse)
            .unwrap_or_else(Iter::failed)
    }

    /// Entries in the tree (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Writes behind the log's back, as a damaged file would hold (tests).
    #[cfg(test)]
    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.insert(self.id, key.as_ref(), value.as_ref());
        self.engine.apply(&batch);
        Ok(())
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

type DiskRange = redb::Range<'static, &'static [u8], &'static [u8]>;
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Entries of a tree in order: the layers' entries over redb's (a tombstone
/// hides redb's entry). An error reading redb is yielded once, then the
/// iterator ends.
pub(crate) struct Iter {
    /// The layers' entries in range, the next one last.
    overlay: Vec<(Bytes, Option<Bytes>)>,
    disk: Option<DiskRange>,
    next_disk: Option<(Bytes, Bytes)>,
    reverse: bool,
    /// Opening the read failed: yielded first.
    error: Option<StoreError>,
}

enum Next {
    Overlay,
    Disk,
    /// The same key in both: the layer's entry wins.
    Both,
}

impl Iter {
    /// An iterator that yields `error` and ends.
    fn failed(error: StoreError) -> Iter {
        Iter {
            overlay: Vec::new(),
            disk: None,
            next_disk: None,
            reverse: false,
            error: Some(error),
        }
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        loop {
            if self.next_disk.is_none()
                && let Some(disk) = &mut self.disk
            {
                let item = if self.reverse {
                    disk.next_back()
                } else {
                    disk.next()
                };
                match item {
                    None => self.disk = None,
                    Some(Err(error)) => {
                        self.disk = None;
                        self.overlay.clear();
                        return Some(Err(error.into()));
                    }
                    Some(Ok((key, value))) => {
                        self.next_disk =
                            Some((Bytes::from(key.value()), Bytes::from(value.value())));
                    }
                }
            }
            let next = match (self.overlay.last(), &self.next_disk) {
                (None, None) => return None,
                (Some(_), None) => Next::Overlay,
                (None, Some(_)) => Next::Disk,
                (Some((layer_key, _)), Some((disk_key, _))) => {
                    match (layer_key.cmp(disk_key), self.reverse) {
                        (std::cmp::Ordering::Equal, _) => Next::Both,
                        (std::cmp::Ordering::Less, false) | (std::cmp::Ordering::Greater, true) => {
                            Next::Overlay
                        }
                        _ => Next::Disk,
                    }
                }
            };
            match next {
                Next::Disk => return self.next_disk.take().map(Ok),
                Next::Overlay | Next::Both => {
                    if matches!(next, Next::Both) {
                        self.next_disk = None;
                    }
                    if let Some((key, Some(value))) = self.overlay.pop() {
                        return Some(Ok((key, value)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(engine: &Engine, tree: TreeId, key: &[u8], value: Option<&[u8]>) {
        let mut batch = Batch::new();
        match value {
            Some(value) => batch.insert(tree, key, value),
            None => batch.remove(tree, key),
        }
        engine.apply(&batch);
    }

    fn keys(iter: Iter) -> Vec<String> {
        iter.map(|entry| {
            let (key, value) = entry.unwrap();
            format!(
                "{}={}",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            )
        })
        .collect()
    }

    /// Entries in redb, in the frozen layer and in the active one read as
    /// one ordered tree, newest layer first; tombstones hide older entries.
    #[test]
    fn reads_merge_the_layers_over_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("db")).unwrap();
        let tree = engine.tree(TreeId::Workflow);
        for key in ["a1", "a3", "a5", "b1"] {
            put(&engine, TreeId::Workflow, key.as_bytes(), Some(b"disk"));
        }
        put(&engine, TreeId::Turns, b"a2", Some(b"other tree"));
        engine.persist().unwrap();
        assert!(!engine.has_frozen());
        put(&engine, TreeId::Workflow, b"a2", Some(b"frozen"));
        put(&engine, TreeId::Workflow, b"a3", None);
        engine.freeze();
        put(&engine, TreeId::Workflow, b"a4", Some(b"active"));
        put(&engine, TreeId::Workflow, b"a5", Some(b"active"));
        put(&engine, TreeId::Workflow, b"a2", None);
        put(&engine, TreeId::Workflow, b"a0", Some(b"active"));
        let merged = ["a0=active", "a1=disk", "a4=active", "a5=active", "b1=disk"];
        assert_eq!(keys(tree.iter()), merged);
        let mut reversed = merged.to_vec();
        reversed.reverse();
        assert_eq!(keys(tree.iter_rev()), reversed);
        assert_eq!(keys(tree.scan_prefix(b"a")), merged[..4]);
        assert_eq!(keys(tree.range_from(b"a2")), merged[2..]);
        assert_eq!(tree.get(b"a3").unwrap(), None);
        assert_eq!(tree.get(b"a2").unwrap(), None);
        assert_eq!(tree.get(b"a1").unwrap().as_deref(), Some(&b"disk"[..]));
        assert_eq!(tree.get(b"a5").unwrap().as_deref(), Some(&b"active"[..]));

        // Draining writes the frozen layer only; persisting writes the rest;
        // the reads do not change, and a reopen sees the same.
        engine.drain().unwrap();
        assert_eq!(keys(tree.iter()), merged);
        engine.persist().unwrap();
        assert_eq!(keys(tree.iter()), merged);
        drop(tree);
        drop(engine);
        let engine = Engine::open(&dir.path().join("db")).unwrap();
        assert_eq!(keys(engine.tree(TreeId::Workflow).iter()), merged);
        assert_eq!(
            keys(engine.tree(TreeId::Ledger).iter()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn prefixes_end_before_the_next_prefix() {
        assert_eq!(prefix_end(b"ab").as_deref(), Some(&b"ac"[..]));
        assert_eq!(prefix_end(&[1, 0xff]).as_deref(), Some(&[2][..]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("db")).unwrap();
        for key in [&[0xff_u8][..], &[0xff, 0], &[0xfe, 9]] {
            put(&engine, TreeId::Turns, key, Some(b"x"));
        }
        assert_eq!(engine.tree(TreeId::Turns).scan_prefix([0xff]).count(), 2);
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = Engine::open(&path).unwrap();
        assert!(matches!(
            Engine::open(&path),
            Err(StoreError::Locked { .. })
        ));
        drop(first);
        Engine::open(&path).unwrap();
    }
}
