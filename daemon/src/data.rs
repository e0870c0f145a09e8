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

#[cfg(test)]
mod tests {
    use super::test_support::open_store;
    use crate::config::LimitsConfig;
    use crate::ledger::{LedgerRecord, Outcome};
    use crate::memory::{NewThread, NewTurn, ThreadError, ThreadTarget};
    use crate::time::Clock;

    fn record(now: crate::time::Timestamp) -> LedgerRecord {
        LedgerRecord {
            time: now,
            model: "gpt-5".into(),
            provider: "openai".into(),
            tool: "chat".into(),
            thread: None,
            session_id: None,
            client: None,
            project: None,
            input_tokens: 7,
            output_tokens: 3,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_usd: Some(0.25),
            cache_saved_usd: 0.0,
            latency_ms: 10,
            outcome: Outcome::Ok,
        }
    }

    fn exchange() -> Vec<NewTurn> {
        vec![
            NewTurn::user("chat", "q"),
            NewTurn::assistant("chat", "gpt-5", "openai", "a"),
        ]
    }

    #[tokio::test]
    async fn an_exchange_lands_with_its_records_and_a_refused_one_keeps_them() {
        let mut limits = LimitsConfig::default();
        limits.threads.max_turns = 2;
        let (_dir, data, clock) = open_store(limits);
        let new = NewThread {
            tool: "chat".into(),
            session_id: "s".into(),
            client: "c".into(),
            cwd: None,
            parent: None,
            first_prompt: "q".into(),
        };
        let staged = data.ledger().stage(&[record(clock.now())]).unwrap();
        let turns = data
            .threads()
            .stage_turns(ThreadTarget::New(new), exchange());
        let (id, outcome) = data.write_exchange(staged, turns).await.unwrap();
        assert_eq!(outcome.turn_count, 2);
        assert_eq!(data.threads().get(&id).unwrap().turns.len(), 2);
        let totals = data.ledger().totals(clock.now()).unwrap();
        assert_eq!(totals.all_time.total.calls, 1);

        // The thread is full: the turns are refused, the paid call is still recorded.
        let staged = data.ledger().stage(&[record(clock.now())]).unwrap();
        let turns = data
            .threads()
            .stage_turns(ThreadTarget::Existing(id), exchange());
        let refused = data.write_exchange(staged, turns).await.unwrap_err();
        assert!(
            matches!(refused, ThreadError::TooManyTurns { max: 2, .. }),
            "{refused:?}"
        );
        assert_eq!(data.threads().get(&id).unwrap().turns.len(), 2);
        let totals = data.ledger().totals(clock.now()).unwrap();
        assert_eq!(totals.all_time.total.calls, 2);
        assert_eq!(totals.all_time.total.input_tokens, 14);
    }
}
