//! `limits.yaml`'s type, with the rest of the configuration. Each top-level
//! section's type belongs to the part of zend it configures (budgets to the
//! ledger, threads to memory, tool limits to the tools); a new section is a
//! new field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, load_layered};
use crate::ledger::BudgetConfig;
use crate::memory::MemoryConfig;

/// The built-in `config/limits.yaml`.
pub const LIMITS_YAML: &str = include_str!("../../../config/limits.yaml");

/// `limits.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub budgets: BudgetConfig,
    pub threads: MemoryConfig,
    /// Per-tool rate limits and concurrency caps (the tool engine applies them).
    pub tools: std::collections::BTreeMap<String, crate::config::ToolLimits>,
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
