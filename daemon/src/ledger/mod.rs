//! The cost ledger: one record per provider call, aggregates for
//! `zend status`, and budgets.
//!
//! Owns records, their aggregates (maintained incrementally in memory and
//! saved at the store's checkpoints, so they never need a scan: see
//! [`aggregates`]), budget checks and the `limits.yaml` type. Computing a call's cost is
//! the providers layer's job; deciding to call `check_budget` before a call
//! and `record` after it is the tools engine's.
//!
//! # API
//! - [`Ledger`] (from [`crate::store::Store::ledger`]):
//!   - `record(LedgerRecord) -> Result<(), StoreError>` (durable),
//!     `record_batch(&[LedgerRecord])`; `write_batch(&[LedgerRecord])` writes
//!     without flushing, for a caller that flushes once for several writes
//!   - `totals(now) -> Result<Totals, StoreError>`; [`Totals::render_text`] for
//!     the table, `Serialize` for JSON
//!   - `check_budget(model, now) -> Result<Option<String>, BudgetError>`
//!     (`Some(warning)` past `warn_at`), `check_budget_for(model,
//!     estimated_usd, now)` when the cost of the call can be estimated
//!   - `records_since(time, limit) -> Result<Vec<LedgerRecord>, StoreError>`
//!   - `set_budgets(BudgetConfig)` after `limits.yaml` is reloaded
//! - [`LimitsConfig::load`]`(config_dir)`: `limits.yaml` (budgets, threads).

mod aggregates;
mod budget;
mod limits;
mod record;
mod totals;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub(crate) use aggregates::Aggregates;
pub use budget::{BudgetConfig, BudgetError, BudgetPeriod, BudgetStatus, ModelBudget};
pub use limits::{LIMITS_YAML, LimitsConfig};
pub use record::{LedgerRecord, Outcome};
pub use totals::{LATENCY_BUCKETS_MS, PeriodTotals, Totals, UNKNOWN_CLIENT, Usage};

use crate::store::{
    Batch, StoreError, Timestamp, Tree, TreeId, Wal, decode, encode, trees, warn_corrupt,
};
use totals::{ALL_TIME, DIM_MODEL, DIM_TOTAL, aggregate_key, day_period, month_period};

/// The cost ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    /// The next record key's sequence number (its last 8 bytes).
    next_seq: AtomicU64,
    records: Tree,
    /// In memory, saved at checkpoints; locked around each record's commit.
    aggregates: Arc<Aggregates>,
    wal: Wal,
    budgets: RwLock<BudgetConfig>,
}

impl Ledger {
    pub(crate) fn new(
        records: Tree,
        aggregates: Arc<Aggregates>,
        wal: Wal,
        budgets: BudgetConfig,
    ) -> Result<Self, StoreError> {
        // Keys must never repeat: go on after the newest record's sequence
        // number, and after the time now in nanoseconds, so a store whose
        // newest records were lost still gets fresh keys.
        let last_seq = match records.iter_rev().next().transpose()? {
            Some((key, _)) => key
                .get(8..16)
                .and_then(|seq| seq.try_into().ok())
                .map_or(0, u64::from_be_bytes),
            None => 0,
        };
        let now_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        Ok(Self {
            inner: Arc::new(Inner {
                next_seq: AtomicU64::new(last_seq.saturating_add(1).max(now_nanos)),
                records,
                aggregates,
                wal,
                budgets: RwLock::new(budgets),
            }),
        })
    }

    /// Records one provider call and updates the aggregates, durably.
    pub async fn record(&self, record: LedgerRecord) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(&record)).await
    }

    /// Records several calls in one batch and one flush.
    pub async fn record_batch(&self, records: &[LedgerRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.write_batch(records)?;
        self.inner.wal.durable().await
    }

    /// Writes records and their aggregates in one batch, **not yet
    /// durable**: the caller must await [`crate::store::Store::flush`] before
    /// telling a client about them ([`Ledger::record_batch`] does both). Lets
    /// a model call's records and its turns share one flush.
    pub fn write_batch(&self, records: &[LedgerRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut aggregates = self.inner.aggregates.lock();
        let keys = aggregates.load_for(records)?;
        let mut batch = Batch::new();
        for record in records {
            // The id is generated under the aggregates' lock: ids count up in
            // commit order.
            let mut key = [0_u8; 16];
            key[..8].copy_from_slice(&record.time.as_millis().to_be_bytes());
            let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
            key[8..].copy_from_slice(&seq.to_be_bytes());
            batch.insert(TreeId::Ledger, &key, encode(record)?);
        }
        self.inner.wal.commit(&batch)?;
        aggregates.add(records, keys);
        Ok(())
    }

    /// Today (UTC), this month and all time, by model, tool and client, and
    /// the budgets. Reads only aggregates: constant time in the record count.
    pub fn totals(&self, now: Timestamp) -> Result<Totals, StoreError> {
        Ok(Totals {
            as_of: now,
            today: self.period_totals(&day_period(now), now.day_key())?,
            this_month: self.period_totals(&month_period(now), now.month_key())?,
            all_time: self.period_totals(ALL_TIME, ALL_TIME.to_owned())?,
            budgets: self.budget_statuses(None, now)?,
        })
    }

    /// [`Ledger::check_budget_for`] with no estimate: refuses only once a
    /// cap is already spent.
    pub fn check_budget(&self, model: &str, now: Timestamp) -> Result<Option<String>, BudgetError> {
        self.check_budget_for(model, 0.0, now)
    }

    /// Refuses a call of `model` expected to cost `estimated_usd` if it would
    /// pass a cap; `Ok(Some(warning))` past the warning threshold.
    pub fn check_budget_for(
        &self,
        model: &str,
        estimated_usd: f64,
        now: Timestamp,
    ) -> Result<Option<String>, BudgetError> {
        let warn_at = self.budgets().warn_at;
        let statuses = self.budget_statuses(Some(model), now)?;
        budget::judge(statuses, estimated_usd, warn_at, now)
    }

    pub fn budgets(&self) -> BudgetConfig {
        self.inner
            .budgets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_budgets(&self, budgets: BudgetConfig) {
        *self
            .inner
            .budgets
            .write()
            .unwrap_or_else(PoisonError::into_inner) = budgets;
    }

    /// Up to `limit` records from `since` on, oldest first; corrupt ones skipped.
    pub fn records_since(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        let mut found = Vec::new();
        for entry in self
            .inner
            .records
            .range_from(since.as_millis().to_be_bytes())
        {
            if found.len() >= limit {
                break;
            }
            let (key, bytes) = entry?;
            if let Some(record) = decode(trees::LEDGER, &key, &bytes) {
                found.push(record);
            }
        }
        Ok(found)
    }

    fn budget_statuses(
        &self,
        model: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<BudgetStatus>, StoreError> {
        let caps = self.budgets().caps(model);
        let mut statuses = Vec::with_capacity(caps.len());
        for cap in caps {
            let period = match cap.period {
                BudgetPeriod::Daily => day_period(now),
                BudgetPeriod::Monthly => month_period(now),
            };
            let key = match &cap.model {
                Some(model) => aggregate_key(&period, DIM_MODEL, model),
                None => aggregate_key(&period, DIM_TOTAL, ""),
            };
            let spent_usd = self
                .inner
                .aggregates
                .lock()
                .get(&key)?
                .map_or(0.0, |aggregate| aggregate.cost_usd());
            statuses.push(BudgetStatus {
                model: cap.model,
                period: cap.period,
                cap_usd: cap.cap_usd,
                spent_usd,
                resets_at: cap.period.resets_at(now),
            });
        }
        Ok(statuses)
    }

    fn period_totals(&self, period: &str, label: String) -> Result<PeriodTotals, StoreError> {
        let mut totals = PeriodTotals {
            period: label,
            ..PeriodTotals::default()
        };
        let found = self
            .inner
            .aggregates
            .lock()
            .with_prefix(&format!("{period}/"))?;
        for (key, aggregate) in found {
            // `<period>/<dimension>/<name>`; a name may itself contain '/'.
            let mut parts = key.splitn(3, '/');
            parts.next();
            let Some((dimension, name)) = parts.next().zip(parts.next()) else {
                warn_corrupt(trees::LEDGER_TOTALS, key.as_bytes(), &"malformed key");
                continue;
            };
            totals.insert(dimension, name, aggregate.usage());
        }
        Ok(totals)
    }
}
