//! Per-tool configuration: `config/tools/<name>.yaml`, compiled in for every
//! built-in tool and overridable key by key from `<config_dir>/tools/<name>.yaml`.
//! A YAML file in the user's `tools/` folder whose name is not a built-in tool
//! is a declarative plugin (see `plugin`).

use std::path::Path;

use serde::Deserialize;

pub use crate::config::ToolLimits;
use crate::config::{ConfigError, load_layered};

/// Which kind of model a tool wants when the model is `auto`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelCategory {
    Fast,
    #[default]
    Balanced,
    Reasoning,
}

/// One tool's settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// Shown to clients as the tool's title.
    pub title: String,
    /// Shown to clients in tools/list: keep it short, it costs every session context.
    pub description: String,
    /// The system prompt for the tool's model calls.
    #[serde(default)]
    pub system_prompt: String,
    /// Default model (name or alias), or `auto` to pick by `category`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub category: ModelCategory,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default thinking mode: minimal, low, medium, high, max.
    #[serde(default)]
    pub thinking_mode: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// When non-empty, only these models (names or aliases) may be used by this tool.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub limits: ToolLimits,
}

fn enabled_by_default() -> bool {
    true
}

/// The compiled-in YAML of each built-in tool.
pub fn builtin_yaml(name: &str) -> Option<&'static str> {
    Some(match name {
        "version" => include_str!("../../../config/tools/version.yaml"),
        "challenge" => include_str!("../../../config/tools/challenge.yaml"),
        "apilookup" => include_str!("../../../config/tools/apilookup.yaml"),
        "chat" => include_str!("../../../config/tools/chat.yaml"),
        "consensus" => include_str!("../../../config/tools/consensus.yaml"),
        "listmodels" => include_str!("../../../config/tools/listmodels.yaml"),
        "threads" => include_str!("../../../config/tools/threads.yaml"),
        "planner" => include_str!("../../../config/tools/planner.yaml"),
        "thinkdeep" => include_str!("../../../config/tools/thinkdeep.yaml"),
        "analyze" => include_str!("../../../config/tools/analyze.yaml"),
        "clink" => include_str!("../../../config/tools/clink.yaml"),
        "codereview" => include_str!("../../../config/tools/codereview.yaml"),
        "debug" => include_str!("../../../config/tools/debug.yaml"),
        "docgen" => include_str!("../../../config/tools/docgen.yaml"),
        "precommit" => include_str!("../../../config/tools/precommit.yaml"),
        "refactor" => include_str!("../../../config/tools/refactor.yaml"),
        "secaudit" => include_str!("../../../config/tools/secaudit.yaml"),
        "testgen" => include_str!("../../../config/tools/testgen.yaml"),
        "tracer" => include_str!("../../../config/tools/tracer.yaml"),
        _ => return None,
    })
}

/// Loads a built-in tool's configuration, with the user's overrides.
pub fn load(name: &str, config_dir: &Path) -> Result<ToolConfig, ConfigError> {
    let builtin = builtin_yaml(name).unwrap_or("");
    load_layered(&format!("{name}.yaml"), builtin, &config_dir.join("tools"))
}

/// A built-in tool's configuration without the user's overrides.
pub fn load_builtin(name: &str) -> Result<ToolConfig, ConfigError> {
    let builtin = builtin_yaml(name).unwrap_or("");
    let path = Path::new("<built-in>/config/tools").join(format!("{name}.yaml"));
    let value = crate::config::parse_yaml(builtin, &path)?;
    serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
        file: path,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_tool_yaml_parses() {
        for name in crate::tools::builtin_names() {
            let config = load_builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!config.description.is_empty(), "{name} has no description");
        }
    }
}
