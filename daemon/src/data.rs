//! What zend keeps on disk, opened together: the [`Store`], and conversation
//! memory ([`Threads`]) and the cost ledger ([`Ledger`]) built beside it on
//! the same store, so that neither the store nor one of them builds another.

use std::path::Path;
use std::sync::Arc;

use crate::config::LimitsConfig;
use crate::ledger::{Ledger, StagedRecords};
use crate::memory::{AppendOutcome, StagedTurns, ThreadError, ThreadId, Threads};
use crate::store::{Store, StoreError};
use crate::time::{Clock, SystemClock};

/// The store with memory and the ledger on it; cheap to clone.
#[derive(Clone)]
pub struct Data {
    store: Store,
    threads: Threads,
    ledger: Ledger,
}

impl Data {
    /// Opens `data_dir/store.redb` with `limits.yaml`'s thread limits and
    /// budgets, on the wall clock.
    pub fn open(data_dir: &Path, limits: &LimitsConfig) -> Result<Data, StoreError> {
        Self::open_with(data_dir, limits, Arc::new(SystemClock))
    }

    /// [`Data::open`] with another clock (tests, benchmarks).
    pub fn open_with(
        data_dir: &Path,
        limits: &LimitsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Data, StoreError> {
        Self::on(Store::open(data_dir)?, limits, clock)
    }

    /// Memory and the ledger on an open store.
    pub fn on(
        store: Store,
        limits: &LimitsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Data, StoreError> {
        let threads = Threads::new(store.clone(), limits.threads.clone(), clock);
        let ledger = Ledger::open(store.clone(), limits.budgets.clone())?;
        Ok(Data {
            store,
            threads,
            ledger,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn threads(&self) -> &Threads {
        &self.threads
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A model call's ledger records and the turns it adds, in one
    /// transaction: the answer waits for one durable commit, not two. When
    /// the turns are refused (the thread expired or is full meanwhile), the
    /// records are written on their own, since the call was paid for.
    pub async fn write_exchange(
        &self,
        records: StagedRecords,
        turns: StagedTurns,
    ) -> Result<(ThreadId, AppendOutcome), ThreadError> {
        let records = Arc::new(records);
        let both = Arc::clone(&records);
        let written = self
            .store
            .write(move |txn| {
                both.apply(txn)?;
                turns.apply(txn)
            })
            .await;
        if let Err(refused) = &written
            && !matches!(refused, ThreadError::Store(_))
        {
            self.store.write(move |txn| records.apply(txn)).await?;
        }
        written
    }

    /// Reports a store that refuses writes after a failed commit: every
    /// write answered so far is already durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.store.flush().await
    }

    /// Lets the writes already queued commit, then stops the store's writer.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.store.close().await
    }
}

/// Helpers for memory's and the ledger's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::store::test_support::retry_while_locked;
    use crate::time::{ManualClock, Timestamp};

    /// Data in a temporary directory with a manual clock at 2025-03-10 12:00 UTC.
    pub(crate) fn open_store(limits: LimitsConfig) -> (tempfile::TempDir, Data, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let (data, clock) = reopen(&dir, limits);
        (dir, data, clock)
    }

    pub(crate) fn reopen(
        dir: &tempfile::TempDir,
        limits: LimitsConfig,
    ) -> (Data, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse_rfc3339("2025-03-10T12:00:00Z").unwrap(),
        ));
        let data = retry_while_locked(
            || Data::open_with(dir.path(), &limits, clock.clone()),
            |e| matches!(e, StoreError::Locked { .. }),
        )
        .unwrap();
        (data, clock)
    }
}

#[cfg(test)]
mod crash_tests;
