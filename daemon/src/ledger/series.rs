//! Spending over time, for the dashboard's charts: the last N UTC days, weeks
//! (Monday to Sunday) or months, each a [`PeriodTotals`] read from the same
//! aggregates as `zend status` (days and months directly; a week is the sum of
//! its seven days' aggregates, latency histograms included).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::totals::{Aggregate, PeriodTotals, day_period, month_period};
use crate::store::{Snapshot, StoreError, TreeId, decode, trees, warn_corrupt};
use crate::time::Timestamp;

const DAY_MS: u64 = 86_400_000;

/// The step of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesUnit {
    Day,
    Week,
    Month,
}

impl SeriesUnit {
    /// The most steps one series may have.
    pub const MAX_STEPS: usize = 366;
}

/// The aggregates under one period prefix, by `(dimension, name)`.
pub(crate) fn aggregates(
    snapshot: &Snapshot,
    period: &str,
) -> Result<BTreeMap<(String, String), Aggregate>, StoreError> {
    let mut found = BTreeMap::new();
    for entry in snapshot.scan_prefix(TreeId::LedgerTotals, format!("{period}/")) {
        let (key, bytes) = entry?;
        let Ok(key) = std::str::from_utf8(&key) else {
            warn_corrupt(trees::LEDGER_TOTALS, &key, &"a key that is not UTF-8");
            continue;
        };
        let Some(aggregate) = decode::<Aggregate>(trees::LEDGER_TOTALS, key.as_bytes(), &bytes)
        else {
            continue;
        };
        // `<period>/<dimension>/<name>`; a name may itself contain '/'.
        let mut parts = key.splitn(3, '/');
        parts.next();
        let Some((dimension, name)) = parts.next().zip(parts.next()) else {
            warn_corrupt(trees::LEDGER_TOTALS, key.as_bytes(), &"malformed key");
            continue;
        };
        found.insert((dimension.to_owned(), name.to_owned()), aggregate);
    }
    Ok(found)
}

pub(crate) fn to_period_totals(
    label: String,
    aggregates: &BTreeMap<(String, String), Aggregate>,
) -> PeriodTotals {
    let mut totals = PeriodTotals {
        period: label,
        ..PeriodTotals::default()
    };
    for ((dimension, name), aggregate) in aggregates {
        totals.insert(dimension, name, aggregate.usage());
    }
    totals
}

/// The last `steps` periods of `unit` up to and including the one holding `now`, oldest first.
pub(crate) fn series(
    snapshot: &Snapshot,
    unit: SeriesUnit,
    steps: usize,
    now: Timestamp,
) -> Result<Vec<PeriodTotals>, StoreError> {
    let steps = steps.clamp(1, SeriesUnit::MAX_STEPS);
    let today = now.as_millis() / DAY_MS;
    let mut out = Vec::with_capacity(steps);
    match unit {
        SeriesUnit::Day => {
            for back in (0..steps as u64).rev() {
                let Some(day) = today.checked_sub(back) else {
                    continue;
                };
                let time = Timestamp::from_millis(day * DAY_MS);
                out.push(to_period_totals(
                    time.day_key(),
                    &aggregates(snapshot, &day_period(time))?,
                ));
            }
        }
        SeriesUnit::Week => {
            // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
            let monday = today.saturating_sub((today + 3) % 7);
            for back in (0..steps as u64).rev() {
                let Some(start) = monday.checked_sub(back * 7) else {
                    continue;
                };
                let mut week: BTreeMap<(String, String), Aggregate> = BTreeMap::new();
                for day in start..(start + 7).min(today + 1) {
                    let time = Timestamp::from_millis(day * DAY_MS);
                    for (key, aggregate) in aggregates(snapshot, &day_period(time))? {
                        week.entry(key).or_default().merge(&aggregate);
                    }
                }
                out.push(to_period_totals(
                    Timestamp::from_millis(start * DAY_MS).day_key(),
                    &week,
                ));
            }
        }
        SeriesUnit::Month => {
            let (year, month, _) = now.date();
            let index = year * 12 + i64::from(month) - 1;
            for back in (0..steps as i64).rev() {
                let at = index - back;
                if at < 1970 * 12 {
                    continue;
                }
                let time =
                    Timestamp::from_date(at.div_euclid(12), (at.rem_euclid(12) + 1) as u32, 1);
                out.push(to_period_totals(
                    time.month_key(),
                    &aggregates(snapshot, &month_period(time))?,
                ));
            }
        }
    }
    Ok(out)
}
