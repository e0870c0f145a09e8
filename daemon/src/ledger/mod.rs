//! The cost ledger: one record per provider call, aggregates for
//! `zend status`, and budgets.
//!
//! Owns records, their aggregates (maintained incrementally, in the same
//! store batch as each record, so they survive restarts and never need a
//! scan), budget checks and the `limits.yaml` type. Computing a call's cost is
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

mod budget;
mod limits;
mod record;
mod totals;

#[cfg(test)]
mod tests;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sled::Tree;

pub use budget::{BudgetConfig, BudgetError, BudgetPeriod, BudgetStatus, ModelBudget};
pub use limits::{LIMITS_YAML, LimitsConfig};
pub use record::{LedgerRecord, Outcome};
pub use totals::{LATENCY_BUCKETS_MS, PeriodTotals, Totals, UNKNOWN_CLIENT, Usage};

use crate::store::{
    Batch, StoreError, Timestamp, TreeId, Wal, decode, encode, trees, warn_corrupt,
};
use totals::{
    ALL_TIME, Aggregate, DIM_MODEL, DIM_TOTAL, aggregate_key, aggregate_keys, day_period,
    month_period,
};

/// Aggregates kept in memory by [`Ledger::write_batch`] before it starts over.
const AGGREGATE_CACHE_MAX: usize = 4096;

/// The cost ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    records: Tree,
    totals: Tree,
    wal: Wal,
    budgets: RwLock<BudgetConfig>,
    /// Serializes the read-modify-write of aggregates, and holds the
    /// aggregates this zend last wrote so a record does not read and decode
    /// its twelve aggregates back from sled (zend is the store's only writer).
    write: Mutex<HashMap<String, Aggregate>>,
}

impl Ledger {
    pub(crate) fn new(
        db: sled::Db,
        records: Tree,
        totals: Tree,
        wal: Wal,
        budgets: BudgetConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                records,
                totals,
                wal,
                budgets: RwLock::new(budgets),
                write: Mutex::new(HashMap::new()),
            }),
        }
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
        let mut cache = self
            .inner
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut touched: BTreeMap<String, Aggregate> = BTreeMap::new();
        let mut encoded_records = Vec::with_capacity(records.len());
        for record in records {
            for key in aggregate_keys(record) {
                let aggregate = match touched.entry(key) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let current = match cache.get(entry.key()) {
                            Some(cached) => cached.clone(),
                            None => self.read_aggregate(entry.key())?.unwrap_or_default(),
                        };
                        entry.insert(current)
                    }
                };
                aggregate.add(record);
            }
            let mut key = [0_u8; 16];
            key[..8].copy_from_slice(&record.time.as_millis().to_be_bytes());
            key[8..].copy_from_slice(&self.inner.db.generate_id()?.to_be_bytes());
            encoded_records.push((key, encode(record)?));
        }
        let mut batch = Batch::new();
        for (key, value) in encoded_records {
            batch.insert(TreeId::Ledger, &key, value);
        }
        for (key, aggregate) in &touched {
            batch.insert(TreeId::LedgerTotals, key.as_bytes(), encode(aggregate)?);
        }
        self.inner.wal.commit(&batch)?;
        // Only what is written is cached. Past days and months stop being
        // touched; dropping everything now and then bounds the map.
        if cache.len() + touched.len() > AGGREGATE_CACHE_MAX {
            cache.clear();
        }
        cache.extend(touched);
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
        for entry in self.inner.records.range(since.as_millis().to_be_bytes()..) {
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
                .read_aggregate(&key)?
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
        for entry in self.inner.totals.scan_prefix(format!("{period}/")) {
            let (key, bytes) = entry?;
            // `<period>/<dimension>/<name>`; a name may itself contain '/'.
            let parsed = std::str::from_utf8(&key).ok().and_then(|key| {
                let mut parts = key.splitn(3, '/');
                parts.next();
                parts.next().zip(parts.next())
            });
            let Some((dimension, name)) = parsed else {
                warn_corrupt(trees::LEDGER_TOTALS, &key, &"malformed key");
                continue;
            };
            if let Some(aggregate) = decode::<Aggregate>(trees::LEDGER_TOTALS, &key, &bytes) {
                totals.insert(dimension, name, aggregate.usage());
            }
        }
        Ok(totals)
    }

    /// An aggregate; `None` when absent or corrupt (counting restarts from zero).
    fn read_aggregate(&self, key: &str) -> Result<Option<Aggregate>, StoreError> {
        Ok(self
            .inner
            .totals
            .get(key)?
            .and_then(|bytes| decode(trees::LEDGER_TOTALS, key.as_bytes(), &bytes)))
    }
}
