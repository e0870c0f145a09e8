//! Budgets: daily and monthly USD caps, global and per model, from the
//! `budgets:` section of `limits.yaml`.
//!
//! A check compares what is already spent (the ledger's aggregates for the
//! current UTC day and month) plus an optional estimate of the coming call
//! against every cap that applies. A call that would pass a cap is refused
//! with [`BudgetError::Exceeded`], which names the cap, the spend and when it
//! resets. Past `warn_at` of a cap, the check returns one line of warning for
//! the tool to append to its result. Calls of unknown cost count as zero.
//! A check is not a reservation: calls checked at the same moment may
//! together pass a cap by the cost of the calls in flight.

use serde::Serialize;

use crate::config::BudgetConfig;
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::util::{human_duration, usd};

impl BudgetConfig {
    /// The caps that apply to a call of `model` (all caps when `None`), in
    /// the order global daily, global monthly, model daily, model monthly.
    pub(crate) fn caps(&self, model: Option<&str>) -> Vec<Cap> {
        let mut caps = Vec::new();
        let mut push = |model: Option<&str>, period, cap: Option<f64>| {
            if let Some(cap_usd) = cap {
                caps.push(Cap {
                    model: model.map(str::to_owned),
                    period,
                    cap_usd,
                });
            }
        };
        push(None, BudgetPeriod::Daily, self.daily_usd);
        push(None, BudgetPeriod::Monthly, self.monthly_usd);
        match model {
            Some(model) => {
                if let Some(caps) = self.per_model.get(model) {
                    push(Some(model), BudgetPeriod::Daily, caps.daily_usd);
                    push(Some(model), BudgetPeriod::Monthly, caps.monthly_usd);
                }
            }
            None => {
                for (model, caps) in &self.per_model {
                    push(Some(model), BudgetPeriod::Daily, caps.daily_usd);
                    push(Some(model), BudgetPeriod::Monthly, caps.monthly_usd);
                }
            }
        }
        caps
    }
}

pub(crate) struct Cap {
    pub model: Option<String>,
    pub period: BudgetPeriod,
    pub cap_usd: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Daily,
    Monthly,
}

impl BudgetPeriod {
    fn name(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Monthly => "monthly",
        }
    }

    fn span(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "today",
            BudgetPeriod::Monthly => "this month",
        }
    }

    pub(crate) fn resets_at(self, now: Timestamp) -> Timestamp {
        match self {
            BudgetPeriod::Daily => now.next_day(),
            BudgetPeriod::Monthly => now.next_month(),
        }
    }
}

/// A cap and how much of it is spent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// `None` for a global cap.
    pub model: Option<String>,
    pub period: BudgetPeriod,
    pub cap_usd: f64,
    pub spent_usd: f64,
    pub resets_at: Timestamp,
}

impl BudgetStatus {
    /// `daily` or `gpt-5 monthly`.
    pub fn label(&self) -> String {
        match &self.model {
            Some(model) => format!("{model} {}", self.period.name()),
            None => self.period.name().to_owned(),
        }
    }

    pub fn fraction(&self) -> f64 {
        self.spent_usd / self.cap_usd
    }

    /// Where in `limits.yaml` this cap is set.
    fn setting(&self) -> String {
        match &self.model {
            Some(model) => format!("budgets.per_model.{model}.{}_usd", self.period.name()),
            None => format!("budgets.{}_usd", self.period.name()),
        }
    }

    fn describe(&self) -> String {
        match &self.model {
            Some(model) => format!("the {} budget for {model}", self.period.name()),
            None => format!("the {} budget", self.period.name()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "refused: this call would pass {} of {} ({} spent {}{}); it resets at {} (in {}). To allow it now, raise {} in limits.yaml",
        status.describe(),
        usd(status.cap_usd),
        usd(status.spent_usd),
        status.model.as_ref().map(|m| format!("on {m} ")).unwrap_or_default(),
        status.period.span(),
        status.resets_at.display_minutes(),
        human_duration(status.resets_at.since(*now)),
        status.setting()
    )]
    Exceeded {
        status: BudgetStatus,
        now: Timestamp,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses the call if any cap would be passed; otherwise warns about the
/// cap closest to being spent, if it is past `warn_at`.
pub(crate) fn judge(
    statuses: Vec<BudgetStatus>,
    estimate_usd: f64,
    warn_at: f64,
    now: Timestamp,
) -> Result<Option<String>, BudgetError> {
    let estimate_usd = if estimate_usd.is_finite() {
        estimate_usd.max(0.0)
    } else {
        0.0
    };
    let mut worst: Option<(f64, BudgetStatus)> = None;
    for status in statuses {
        let after = status.spent_usd + estimate_usd;
        if status.spent_usd >= status.cap_usd || after > status.cap_usd {
            return Err(BudgetError::Exceeded { status, now });
        }
        let fraction = after / status.cap_usd;
        if fraction >= warn_at && worst.as_ref().is_none_or(|(f, _)| fraction > *f) {
            worst = Some((fraction, status));
        }
    }
    Ok(worst.map(|(fraction, status)| {
        format!(
            "Budget: {} of {} of {} spent ({:.0}%); it resets at {}.",
            usd(status.spent_usd),
            status.describe(),
            usd(status.cap_usd),
            fraction * 100.0,
            status.resets_at.display_minutes()
        )
    }))
}
