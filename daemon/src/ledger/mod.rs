//! The cost ledger: one record per provider call, aggregates for
//! `zend status`, and budgets.
//!
//! Owns records, their aggregates (updated in the same store transaction as
//! the records they count, so they never need a scan and equal the records
//! after any crash) and budget checks against the `budgets:` section of `limits.yaml`
//! ([`crate::config::BudgetConfig`], which the ledger is given). Computing a
//! call's cost is the providers layer's job; deciding to call `check_budget`
//! before a call and `record` after it is the tools engine's.
//!
//! # API
//! - [`Ledger`] (`Ledger::open(Store, BudgetConfig)`, built beside memory):
//!   - `record(LedgerRecord) -> Result<(), StoreError>`,
//!     `record_batch(&[LedgerRecord])`: durable when they return; budgets and
//!     totals see a record only once it is
//!   - `totals(now) -> Result<Totals, StoreError>`; [`Totals::render_text`] for
//!     the table, `Serialize` for JSON
//!   - `check_budget(model, now) -> Result<Option<String>, BudgetError>`
//!     (`Some(warning)` past `warn_at`), `check_budget_for(model,
//!     estimated_usd, now)` when the cost of the call can be estimated
//!   - `series(unit, steps, now) -> Result<Vec<PeriodTotals>, StoreError>`: the
//!     last days, weeks or months, for the dashboard
//!   - `records_since(time, limit) -> Result<Vec<LedgerRecord>, StoreError>`
//!   - `set_budgets(BudgetConfig)` after `limits.yaml` is reloaded

mod budget;
mod record;
mod series;
mod totals;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use budget::{BudgetError, BudgetPeriod, BudgetStatus};
pub use record::{LedgerRecord, Outcome};
pub use series::SeriesUnit;
pub use totals::{LATENCY_BUCKETS_MS, PeriodTotals, Totals, UNKNOWN_CLIENT, Usage};

use crate::config::BudgetConfig;
use crate::store::{Snapshot, Store, StoreError, TreeId, Txn, decode, encode, trees};
use crate::time::Timestamp;
use totals::{
    ALL_TIME, Aggregate, DIM_MODEL, DIM_TOTAL, aggregate_key, aggregate_keys, day_period,
    month_period,
};

/// The cost ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The next record key's sequence number (its last 8 bytes).
    next_seq: AtomicU64,
    budgets: RwLock<BudgetConfig>,
}

impl Ledger {
    /// The ledger in `store`, with `limits.yaml`'s budgets.
    pub fn open(store: Store, budgets: BudgetConfig) -> Result<Self, StoreError> {
        // Keys must never repeat: go on after the newest record's sequence
        // number, and after the time now in nanoseconds, so a store whose
        // newest records were lost still gets fresh keys.
        let last_seq = match store.read()?.iter_rev(TreeId::Ledger).next().transpose()? {
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
                store,
                next_seq: AtomicU64::new(last_seq.saturating_add(1).max(now_nanos)),
                budgets: RwLock::new(budgets),
            }),
        })
    }

    /// Records one provider call and updates the aggregates, durably.
    pub async fn record(&self, record: LedgerRecord) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(&record)).await
    }

    /// Records several calls and their aggregates in one transaction;
    /// returns once it is durable.
    pub async fn record_batch(&self, records: &[LedgerRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let staged = self.stage(records)?;
        self.inner.store.write(move |txn| staged.apply(txn)).await
    }

    /// Records made ready to be written in a transaction that also carries
    /// other writes (a model call's records with the turns it adds).
    pub fn stage(&self, records: &[LedgerRecord]) -> Result<StagedRecords, StoreError> {
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let mut key = [0_u8; 16];
            key[..8].copy_from_slice(&record.time.as_millis().to_be_bytes());
            let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
            key[8..].copy_from_slice(&seq.to_be_bytes());
            entries.push((key, encode(record)?));
        }
        Ok(StagedRecords {
            entries,
            records: records.to_vec(),
        })
    }

    /// Today (UTC), this month and all time, by model, tool and client, and
    /// the budgets, from one snapshot. Reads only aggregates: constant time
    /// in the record count.
    pub fn totals(&self, now: Timestamp) -> Result<Totals, StoreError> {
        let snapshot = self.inner.store.read()?;
        Ok(Totals {
            as_of: now,
            today: period_totals(&snapshot, &day_period(now), now.day_key())?,
            this_month: period_totals(&snapshot, &month_period(now), now.month_key())?,
            all_time: period_totals(&snapshot, ALL_TIME, ALL_TIME.to_owned())?,
            budgets: self.budget_statuses(&snapshot, None, now)?,
        })
    }

    /// Totals of the last `steps` days, weeks or months up to `now`, oldest
    /// first, from one snapshot (aggregates only, as [`Ledger::totals`]).
    pub fn series(
        &self,
        unit: SeriesUnit,
        steps: usize,
        now: Timestamp,
    ) -> Result<Vec<PeriodTotals>, StoreError> {
        series::series(&self.inner.store.read()?, unit, steps, now)
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
        let snapshot = self.inner.store.read()?;
        let statuses = self.budget_statuses(&snapshot, Some(model), now)?;
        budget::judge(statuses, estimated_usd, warn_at, now)
    }

    pub fn budgets(&self) -> BudgetConfig {
        crate::util::read(&self.inner.budgets).clone()
    }

    pub fn set_budgets(&self, budgets: BudgetConfig) {
        *crate::util::write(&self.inner.budgets) = budgets;
    }

    /// Up to `limit` records from `since` on, oldest first; corrupt ones skipped.
    pub fn records_since(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        let snapshot = self.inner.store.read()?;
        let mut found = Vec::new();
        for entry in snapshot.range_from(TreeId::Ledger, since.as_millis().to_be_bytes()) {
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
        snapshot: &Snapshot,
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
            let spent_usd = snapshot
                .get(TreeId::LedgerTotals, key.as_bytes())?
                .and_then(|bytes| decode::<Aggregate>(trees::LEDGER_TOTALS, key.as_bytes(), &bytes))
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
}

/// The records and, read and written back in the same transaction, the
/// twelve or fifteen aggregates (three periods × four or five dimensions) each one changes.
/// Ledger records ready for a transaction ([`Ledger::stage`]).
pub struct StagedRecords {
    entries: Vec<([u8; 16], Vec<u8>)>,
    records: Vec<LedgerRecord>,
}

impl StagedRecords {
    /// Writes the records and their aggregates in `txn`.
    pub fn apply(&self, txn: &mut Txn<'_>) -> Result<(), StoreError> {
        write_records(txn, &self.entries, &self.records)
    }
}

fn write_records(
    txn: &mut Txn<'_>,
    entries: &[([u8; 16], Vec<u8>)],
    records: &[LedgerRecord],
) -> Result<(), StoreError> {
    let mut changed: BTreeMap<String, Aggregate> = BTreeMap::new();
    for ((key, value), record) in entries.iter().zip(records) {
        txn.insert(TreeId::Ledger, key, value)?;
        for key in aggregate_keys(record) {
            let aggregate = match changed.entry(key) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    // A corrupt aggregate starts again from zero.
                    let stored = txn
                        .get(TreeId::LedgerTotals, entry.key().as_bytes())?
                        .and_then(|bytes| {
                            decode(trees::LEDGER_TOTALS, entry.key().as_bytes(), &bytes)
                        })
                        .unwrap_or_default();
                    entry.insert(stored)
                }
            };
            aggregate.add(record);
        }
    }
    for (key, aggregate) in &changed {
        txn.insert(TreeId::LedgerTotals, key.as_bytes(), &encode(aggregate)?)?;
    }
    Ok(())
}

fn period_totals(
    snapshot: &Snapshot,
    period: &str,
    label: String,
) -> Result<PeriodTotals, StoreError> {
    Ok(series::to_period_totals(
        label,
        &series::aggregates(snapshot, period)?,
    ))
}
