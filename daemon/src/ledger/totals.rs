//! Aggregates kept next to the records, and the [`Totals`] `zend status` shows.
//!
//! Each record updates, in the same store batch, one aggregate per period
//! (all time, its UTC day, its UTC month) and dimension (total, model, tool,
//! client, and project when the call's session had a working directory):
//! twelve or fifteen small values. Reading totals is then three prefix scans
//! over a few dozen keys, however many records there are.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::budget::BudgetStatus;
use super::record::LedgerRecord;
use crate::time::Timestamp;
use crate::util::usd;

/// Upper bounds (ms) of the latency histogram buckets; the last is open.
/// Part of the stored schema: changing them bumps the schema version.
pub const LATENCY_BUCKETS_MS: [u64; 19] = [
    100,
    250,
    500,
    1_000,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    45_000,
    60_000,
    90_000,
    120_000,
    180_000,
    300_000,
    u64::MAX,
];

/// Stored per `<period>/<dimension>/<name>` key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Aggregate {
    calls: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    /// Sum of known costs.
    cost_usd: f64,
    /// What prompt caching saved (net of cache writes).
    cache_saved_usd: f64,
    /// Calls whose cost is unknown (not counted in `cost_usd`).
    unpriced_calls: u64,
    latency_histogram: Vec<u64>,
}

impl Aggregate {
    pub(crate) fn add(&mut self, record: &LedgerRecord) {
        self.calls += 1;
        self.errors += u64::from(record.outcome.is_error());
        self.input_tokens += record.input_tokens;
        self.output_tokens += record.output_tokens;
        self.cached_tokens += record.cached_tokens;
        self.cache_write_tokens += record.cache_write_tokens;
        self.reasoning_tokens += record.reasoning_tokens;
        if record.cache_saved_usd.is_finite() {
            self.cache_saved_usd += record.cache_saved_usd;
        }
        match record.cost_usd {
            Some(cost) if cost.is_finite() => self.cost_usd += cost,
            _ => self.unpriced_calls += 1,
        }
        self.latency_histogram.resize(LATENCY_BUCKETS_MS.len(), 0);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| record.latency_ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len() - 1);
        self.latency_histogram[bucket] += 1;
    }

    /// Adds another period's aggregate (a week from its days).
    pub(crate) fn merge(&mut self, other: &Aggregate) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cost_usd += other.cost_usd;
        self.cache_saved_usd += other.cache_saved_usd;
        self.unpriced_calls += other.unpriced_calls;
        if self.latency_histogram.len() < other.latency_histogram.len() {
            self.latency_histogram
                .resize(other.latency_histogram.len(), 0);
        }
        for (mine, theirs) in self
            .latency_histogram
            .iter_mut()
            .zip(&other.latency_histogram)
        {
            *mine += theirs;
        }
    }

    pub(crate) fn cost_usd(&self) -> f64 {
        self.cost_usd
    }

    /// The latency below which `percent` % of calls fell, interpolated within its
    /// histogram bucket.
    fn latency_percentile_ms(&self, percent: u64) -> Option<u64> {
        let count: u64 = self.latency_histogram.iter().sum();
        if count == 0 {
            return None;
        }
        let half = (count * percent).div_ceil(100).max(1);
        let mut before = 0;
        for (bucket, &n) in self.latency_histogram.iter().enumerate() {
            if before + n >= half && n > 0 {
                let lower = if bucket == 0 {
                    0
                } else {
                    LATENCY_BUCKETS_MS[bucket - 1]
                };
                let Some(&upper) = LATENCY_BUCKETS_MS.get(bucket).filter(|&&u| u != u64::MAX)
                else {
                    return Some(lower);
                };
                let into = (half - before) as f64 / n as f64;
                return Some(lower + ((upper - lower) as f64 * into).round() as u64);
            }
            before += n;
        }
        None
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage {
            calls: self.calls,
            errors: self.errors,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_tokens: self.cached_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
            cost_usd: self.cost_usd,
            cache_saved_usd: self.cache_saved_usd,
            unpriced_calls: self.unpriced_calls,
            p50_latency_ms: self.latency_percentile_ms(50),
            p90_latency_ms: self.latency_percentile_ms(90),
            p99_latency_ms: self.latency_percentile_ms(99),
        }
    }
}

/// Usage over a period, for one model, tool, client, or all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    pub calls: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Sum of the known costs.
    pub cost_usd: f64,
    /// What prompt caching saved (net of cache writes), in USD.
    pub cache_saved_usd: f64,
    /// Calls of unknown cost, not in `cost_usd`.
    pub unpriced_calls: u64,
    /// Median latency (from a histogram; interpolated within a bucket).
    pub p50_latency_ms: Option<u64>,
    /// 90th and 99th percentile latency, the same way.
    pub p90_latency_ms: Option<u64>,
    pub p99_latency_ms: Option<u64>,
}

/// One period: all time, a UTC day or a UTC month.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeriodTotals {
    /// `all`, `2025-01-31` or `2025-01`.
    pub period: String,
    pub total: Usage,
    pub by_model: BTreeMap<String, Usage>,
    pub by_tool: BTreeMap<String, Usage>,
    pub by_client: BTreeMap<String, Usage>,
    /// By the session's working directory; calls without one (HTTP sessions, records
    /// older than this field) are in `total` only.
    pub by_project: BTreeMap<String, Usage>,
}

impl PeriodTotals {
    pub(crate) fn insert(&mut self, dimension: &str, name: &str, usage: Usage) {
        match dimension {
            DIM_TOTAL => self.total = usage,
            DIM_MODEL => {
                self.by_model.insert(name.to_owned(), usage);
            }
            DIM_TOOL => {
                self.by_tool.insert(name.to_owned(), usage);
            }
            DIM_CLIENT => {
                self.by_client.insert(name.to_owned(), usage);
            }
            DIM_PROJECT => {
                self.by_project.insert(name.to_owned(), usage);
            }
            _ => {}
        }
    }
}

/// What `zend status` shows about spending.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    pub as_of: Timestamp,
    pub today: PeriodTotals,
    pub this_month: PeriodTotals,
    pub all_time: PeriodTotals,
    /// Every configured cap and how much of it is spent.
    pub budgets: Vec<BudgetStatus>,
}

pub(crate) const DIM_TOTAL: &str = "total";
pub(crate) const DIM_MODEL: &str = "model";
pub(crate) const DIM_TOOL: &str = "tool";
pub(crate) const DIM_CLIENT: &str = "client";
pub(crate) const DIM_PROJECT: &str = "project";

/// A client that did not give its name.
pub const UNKNOWN_CLIENT: &str = "unknown";

pub(crate) const ALL_TIME: &str = "all";

pub(crate) fn day_period(time: Timestamp) -> String {
    let day = time.day_key();
    let mut period = String::with_capacity(1 + day.len());
    period.push('d');
    period.push_str(&day);
    period
}

pub(crate) fn month_period(time: Timestamp) -> String {
    let month = time.month_key();
    let mut period = String::with_capacity(1 + month.len());
    period.push('m');
    period.push_str(&month);
    period
}

/// `period/dimension/name`, built by hand: a record makes twelve or fifteen (`format!` cost ~1k instructions each).
pub(crate) fn aggregate_key(period: &str, dimension: &str, name: &str) -> String {
    let mut key = String::with_capacity(period.len() + dimension.len() + name.len() + 2);
    key.push_str(period);
    key.push('/');
    key.push_str(dimension);
    key.push('/');
    key.push_str(name);
    key
}

/// The aggregates a record updates: twelve, fifteen with a project.
pub(crate) fn aggregate_keys(record: &LedgerRecord) -> Vec<String> {
    let client = record.client.as_deref().unwrap_or(UNKNOWN_CLIENT);
    let project = record.project.as_deref().filter(|p| !p.is_empty());
    let (day, month) = (day_period(record.time), month_period(record.time));
    let periods = [ALL_TIME, day.as_str(), month.as_str()];
    let mut keys = Vec::with_capacity(15);
    for period in periods {
        keys.push(aggregate_key(period, DIM_TOTAL, ""));
        keys.push(aggregate_key(period, DIM_MODEL, &record.model));
        keys.push(aggregate_key(period, DIM_TOOL, &record.tool));
        keys.push(aggregate_key(period, DIM_CLIENT, client));
        if let Some(project) = project {
            keys.push(aggregate_key(period, DIM_PROJECT, project));
        }
    }
    keys
}

impl Totals {
    /// A table for `zend status`: the three periods, this month by model,
    /// tool and client, then budgets.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<14} {:>7} {:>6} {:>9} {:>9} {:>9}  {:<18} {:>8}",
            "spending", "calls", "errors", "input", "output", "cached", "cost", "p50"
        );
        for (label, period) in [
            ("today", &self.today),
            ("this month", &self.this_month),
            ("all time", &self.all_time),
        ] {
            row(&mut text, label, &period.total);
        }
        if self.this_month.total.cached_tokens > 0 || self.this_month.total.cache_write_tokens > 0 {
            let _ = writeln!(
                text,
                "\nprompt caching saved {} today, {} this month ({} input tokens read from caches this month)",
                usd(self.today.total.cache_saved_usd),
                usd(self.this_month.total.cache_saved_usd),
                tokens(self.this_month.total.cached_tokens),
            );
        }
        for (label, rows) in [
            ("model", &self.this_month.by_model),
            ("tool", &self.this_month.by_tool),
            ("client", &self.this_month.by_client),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(text, "\nthis month by {label}");
            for (name, usage) in rows {
                row(&mut text, &format!("  {name}"), usage);
            }
        }
        if !self.budgets.is_empty() {
            let _ = writeln!(text, "\nbudgets");
            for budget in &self.budgets {
                let _ = writeln!(
                    text,
                    "  {:<24} {} of {} ({:.0}%), resets {}",
                    budget.label(),
                    usd(budget.spent_usd),
                    usd(budget.cap_usd),
                    budget.fraction() * 100.0,
                    budget.resets_at.display_minutes()
                );
            }
        }
        text
    }
}

fn row(text: &mut String, label: &str, usage: &Usage) {
    let _ = writeln!(
        text,
        "{:<14} {:>7} {:>6} {:>9} {:>9} {:>9}  {:<18} {:>8}",
        label,
        usage.calls,
        usage.errors,
        tokens(usage.input_tokens),
        tokens(usage.output_tokens),
        tokens(usage.cached_tokens),
        cost(usage),
        usage.p50_latency_ms.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0)
        ),
    );
}

fn tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

fn cost(usage: &Usage) -> String {
    match (usage.calls, usage.unpriced_calls) {
        (0, _) => "$0.00".to_owned(),
        (calls, unpriced) if calls == unpriced => "unknown".to_owned(),
        (_, 0) => usd(usage.cost_usd),
        (_, unpriced) => format!("{} +{unpriced} unpriced", usd(usage.cost_usd)),
    }
}
