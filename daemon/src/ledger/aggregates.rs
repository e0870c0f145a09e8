//! The ledger's aggregates, kept in memory and saved at checkpoints.
//!
//! Every ledger record changes twelve aggregates (three periods × four
//! dimensions). Writing them with each record was 60 % of the bytes a chat
//! call wrote and most of the store's CPU, and sled's memory grows with the
//! bytes written (BENCHMARKS.md, "Soak memory"). So a record's batch holds
//! only the record; the aggregates it changed stay here, marked dirty, and
//! the write-ahead log writes them as one snapshot batch at each checkpoint
//! and at close ([`Deferred`]). After a crash, the log hands back the
//! records that followed the last snapshot and they are counted again
//! ([`Deferred::recover`]), so the totals stay exact.
//!
//! Readers see the in-memory value of a key before sled's: sled holds only
//! what the last snapshot saved.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::record::LedgerRecord;
use super::totals::{Aggregate, aggregate_keys};
use crate::store::{Batch, Bytes, Deferred, StoreError, Tree, TreeId, decode, encode, trees};

/// Clean aggregates kept in memory before they are dropped (dirty ones are
/// kept until saved). Past days and months stop being touched.
const CLEAN_MAX: usize = 4096;

pub(crate) struct Aggregates {
    totals: Tree,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    entries: BTreeMap<String, Cached>,
    dirty: usize,
}

struct Cached {
    aggregate: Aggregate,
    /// Changed since the last snapshot.
    dirty: bool,
}

/// The aggregates, locked: the ledger's record writers commit while holding
/// this, so a snapshot (taken under it too) never falls between a record
/// and its aggregates.
pub(crate) struct Locked<'a> {
    totals: &'a Tree,
    state: MutexGuard<'a, State>,
}

impl Aggregates {
    pub(crate) fn new(totals: Tree) -> Self {
        Self {
            totals,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked {
            totals: &self.totals,
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl Locked<'_> {
    /// Reads the keys `records` will change into memory and returns them,
    /// so that [`Locked::add`] cannot fail after their batch is committed.
    pub(crate) fn load_for(
        &mut self,
        records: &[LedgerRecord],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let record_keys = aggregate_keys(record);
            for key in &record_keys {
                self.load(key)?;
            }
            keys.push(record_keys);
        }
        Ok(keys)
    }

    /// Counts `records` under the keys [`Locked::load_for`] returned.
    pub(crate) fn add(&mut self, records: &[LedgerRecord], keys: Vec<Vec<String>>) {
        let state = &mut *self.state;
        for (record, record_keys) in records.iter().zip(keys) {
            for key in record_keys {
                let cached = state.entries.entry(key).or_insert_with(|| Cached {
                    aggregate: Aggregate::default(),
                    dirty: false,
                });
                cached.aggregate.add(record);
                if !cached.dirty {
                    cached.dirty = true;
                    state.dirty += 1;
                }
            }
        }
    }

    /// The current value of `key`; `None` when absent or corrupt (counting
    /// restarts from zero).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Aggregate>, StoreError> {
        if let Some(cached) = self.state.entries.get(key) {
            return Ok(Some(cached.aggregate.clone()));
        }
        read(self.totals, key)
    }

    /// Every aggregate whose key starts with `prefix`, in key order.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Result<Vec<(String, Aggregate)>, StoreError> {
        let mut found = BTreeMap::new();
        for entry in self.totals.scan_prefix(prefix) {
            let (key, bytes) = entry?;
            let Ok(key) = String::from_utf8(key.to_vec()) else {
                crate::store::warn_corrupt(trees::LEDGER_TOTALS, &key, &"a key that is not UTF-8");
                continue;
            };
            if let Some(aggregate) = decode(trees::LEDGER_TOTALS, key.as_bytes(), &bytes) {
                found.insert(key, aggregate);
            }
        }
        let in_memory = self
            .state
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, cached) in in_memory {
            found.insert(key.clone(), cached.aggregate.clone());
        }
        Ok(found.into_iter().collect())
    }

    fn load(&mut self, key: &str) -> Result<(), StoreError> {
        if self.state.entries.contains_key(key) {
            return Ok(());
        }
        let aggregate = read(self.totals, key)?.unwrap_or_default();
        self.state.entries.insert(
            key.to_owned(),
            Cached {
                aggregate,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Drops clean entries once there are many.
    fn trim(&mut self) {
        let state = &mut *self.state;
        if state.entries.len() - state.dirty > CLEAN_MAX {
            state.entries.retain(|_, cached| cached.dirty);
        }
    }
}

fn read(totals: &Tree, key: &str) -> Result<Option<Aggregate>, StoreError> {
    Ok(totals
        .get(key)?
        .and_then(|bytes| decode(trees::LEDGER_TOTALS, key.as_bytes(), &bytes)))
}

impl Deferred for Aggregates {
    fn recover(&self, records: &[(Bytes, Bytes)]) -> Result<(), StoreError> {
        let mut locked = self.lock();
        let records: Vec<LedgerRecord> = records
            .iter()
            .filter_map(|(key, value)| decode(trees::LEDGER, key, value))
            .collect();
        let keys = locked.load_for(&records)?;
        locked.add(&records, keys);
        Ok(())
    }

    fn snapshot(
        &self,
        write: &mut dyn FnMut(Option<&Batch>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut locked = self.lock();
        if locked.state.dirty == 0 {
            return write(None);
        }
        let mut batch = Batch::new();
        for (key, cached) in &locked.state.entries {
            if cached.dirty {
                batch.insert(
                    TreeId::LedgerTotals,
                    key.as_bytes(),
                    encode(&cached.aggregate)?,
                );
            }
        }
        write(Some(&batch))?;
        let state = &mut *locked.state;
        for cached in state.entries.values_mut() {
            cached.dirty = false;
        }
        state.dirty = 0;
        locked.trim();
        Ok(())
    }
}
