//! `limits.yaml`'s types, with the rest of the configuration: the file and
//! each of its sections (budgets for the ledger, threads for memory, tool
//! limits for the tools). The parts of zend they configure take them as
//! values, and what they do with them (checking caps, expiring threads) stays
//! with those parts; a new section is a new field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, load_layered};

/// The built-in `config/limits.yaml`.
pub const LIMITS_YAML: &str = include_str!("../../../config/limits.yaml");

/// `limits.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub budgets: BudgetConfig,
    pub threads: MemoryConfig,
    /// Per-tool rate limits and concurrency caps (the tool engine applies them).
    pub tools: BTreeMap<String, crate::config::ToolLimits>,
}

impl LimitsConfig {
    /// The built-in file merged with `<config_dir>/limits.yaml`, validated.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let config: LimitsConfig = load_layered("limits.yaml", LIMITS_YAML, config_dir)?;
        config.validate().map_err(|message| ConfigError::Invalid {
            file: if config_dir.join("limits.yaml").exists() {
                config_dir.join("limits.yaml")
            } else {
                "<built-in>/config/limits.yaml".into()
            },
            message,
        })?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.budgets.validate()?;
        if self.threads.ttl_hours == 0 {
            return Err("threads.ttl_hours must be at least 1".into());
        }
        if self.threads.max_turns == 0 {
            return Err("threads.max_turns must be at least 1".into());
        }
        Ok(())
    }
}

/// The `budgets:` section of `limits.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Cap on all calls per UTC day.
    pub daily_usd: Option<f64>,
    /// Cap on all calls per UTC month.
    pub monthly_usd: Option<f64>,
    /// Fraction of a cap past which checks warn (0.8 = 80 %).
    pub warn_at: f64,
    /// Caps for single models, keyed by the ledger's model name.
    pub per_model: BTreeMap<String, ModelBudget>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            daily_usd: None,
            monthly_usd: None,
            warn_at: 0.8,
            per_model: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelBudget {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

impl BudgetConfig {
    /// Checks values serde cannot: positive caps, a warning fraction in (0, 1].
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: String, cap: Option<f64>| match cap {
            Some(cap) if !(cap.is_finite() && cap > 0.0) => Err(format!(
                "{name} must be a positive number of US dollars, or null for no cap"
            )),
            _ => Ok(()),
        };
        check("budgets.daily_usd".into(), self.daily_usd)?;
        check("budgets.monthly_usd".into(), self.monthly_usd)?;
        for (model, caps) in &self.per_model {
            check(
                format!("budgets.per_model.{model}.daily_usd"),
                caps.daily_usd,
            )?;
            check(
                format!("budgets.per_model.{model}.monthly_usd"),
                caps.monthly_usd,
            )?;
        }
        if !(self.warn_at > 0.0 && self.warn_at <= 1.0) {
            return Err(
                "budgets.warn_at must be a fraction above 0 and at most 1, such as 0.8".into(),
            );
        }
        Ok(())
    }
}

/// The `threads:` section of `limits.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// A thread expires this long after its last turn (Zen kept 3 hours in RAM).
    pub ttl_hours: u64,
    /// Turns a thread may hold; the append past it is refused.
    pub max_turns: u32,
    /// How often the background sweeper removes expired threads.
    pub sweep_interval_secs: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            ttl_hours: 72,
            max_turns: 50,
            sweep_interval_secs: 600,
        }
    }
}

impl MemoryConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_hours.saturating_mul(3600))
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs.max(1))
    }

    /// Applies Zen's variables, `CONVERSATION_TIMEOUT_HOURS` and
    /// `MAX_CONVERSATION_TURNS`, so people moving from Zen keep their setup;
    /// `var` reads zend's `Env` (environment and `.env`), a map in tests. Unparsable or zero
    /// values are ignored with a warning.
    pub fn apply_zen_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        let read = |name: &str| -> Option<u64> {
            let text = var(name)?;
            match text.trim().parse::<u64>() {
                Ok(value) if value > 0 => Some(value),
                _ => {
                    tracing::warn!(name, value = %text, "ignoring: expected a whole number above 0");
                    None
                }
            }
        };
        if let Some(hours) = read("CONVERSATION_TIMEOUT_HOURS") {
            self.ttl_hours = hours;
        }
        if let Some(turns) = read("MAX_CONVERSATION_TURNS") {
            self.max_turns = u32::try_from(turns).unwrap_or(u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_limits_yaml_parses_to_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = LimitsConfig::load(dir.path()).unwrap();
        assert_eq!(config.budgets, LimitsConfig::default().budgets);
        assert_eq!(config.threads, LimitsConfig::default().threads);
    }

    #[test]
    fn user_file_overrides_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("limits.yaml"),
            "budgets:\n  daily_usd: 5\n  per_model:\n    gpt-5: { monthly_usd: 20 }\nthreads:\n  ttl_hours: 3\n",
        )
        .unwrap();
        let config = LimitsConfig::load(dir.path()).unwrap();
        assert_eq!(config.budgets.daily_usd, Some(5.0));
        assert_eq!(config.budgets.warn_at, 0.8);
        assert_eq!(config.budgets.per_model["gpt-5"].monthly_usd, Some(20.0));
        assert_eq!(config.threads.ttl_hours, 3);
        assert_eq!(config.threads.max_turns, 50);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("limits.yaml"), "budgets:\n  daily_usd: [\n").unwrap();
        let err = LimitsConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("limits.yaml:"), "{err}");

        std::fs::write(dir.path().join("limits.yaml"), "budgets:\n  dayly_usd: 5\n").unwrap();
        let err = LimitsConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("dayly_usd"), "{err}");

        std::fs::write(
            dir.path().join("limits.yaml"),
            "budgets:\n  daily_usd: -1\n",
        )
        .unwrap();
        let err = LimitsConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("budgets.daily_usd must be a positive"),
            "{err}"
        );
    }
}
