//! Configuration as data: YAML compiled into zend, overridden by the user's copy.
//!
//! Every file under `config/` in the repository is embedded at build time. At
//! start, zend reads the same file name from its config directory, if present,
//! and deep-merges it over the built-in one (maps merge key by key; anything else
//! is replaced), then deserializes the result. So a user's file need only hold
//! what it changes. Errors name the file and line.
//!
//! This module holds the loader, `server.yaml`'s type and `limits.yaml`'s
//! types ([`limits`]: budgets, threads, tool limits); other modules own their files' types (models, tools) and
//! load them through [`load_layered`].

pub mod limits;

pub use limits::{BudgetConfig, LIMITS_YAML, LimitsConfig, MemoryConfig, ModelBudget};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The built-in `config/server.yaml`.
pub const SERVER_YAML: &str = include_str!("../../config/server.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}:{column}: {message}; fix the file or remove it to use the defaults")]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}; fix the file or remove it to use the defaults")]
    Invalid { file: PathBuf, message: String },
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `server.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds an auto-started zend waits with no sessions before exiting; 0 = never.
    pub idle_timeout_secs: u64,
    /// Seconds live calls get to finish on shutdown.
    pub shutdown_deadline_secs: u64,
    /// Tools hidden from clients.
    #[serde(default)]
    pub disabled_tools: Vec<String>,
    /// Which files tools may read (zen's own directories never).
    #[serde(default)]
    pub files: FilesConfig,
    /// Live sessions (shim and HTTP) served at once; more are refused with a message.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Largest tool result sent to a client, in bytes of text; 0 = no limit.
    /// Longer answers are sent in pages (`tools::pages`).
    #[serde(default = "default_result_budget")]
    pub result_budget_bytes: usize,
    /// Budgets by client name (as the client gives it in `initialize`,
    /// any case), over `result_budget_bytes`.
    #[serde(default)]
    pub result_budget_by_client: BTreeMap<String, usize>,
}

fn default_max_sessions() -> usize {
    1024
}

/// `server.yaml`'s `files`: path rules every file a tool reads is checked against.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Credential files and directories refused out of the box.
    pub default_deny: Vec<String>,
    /// The user's own additions to `default_deny`.
    pub deny: Vec<String>,
    /// Paths read even though a deny rule (or a private key inside) would refuse them.
    pub allow: Vec<String>,
}

/// What every supported client shows inline, whole (Claude Code keeps up to
/// about 40 KB, Codex CLI 48,000 characters, Gemini CLI 40,000).
const fn default_result_budget() -> usize {
    32 * 1024
}

/// The smallest result budget honoured: the header, paging note and footer
/// need about 1 KB, and a page should say something.
pub const MIN_RESULT_BUDGET: usize = 4 * 1024;

impl ServerConfig {
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        load_layered("server.yaml", SERVER_YAML, config_dir)
    }

    /// The result budget for a client (bytes), `None` when unlimited; a budget
    /// under [`MIN_RESULT_BUDGET`] is raised to it.
    pub fn result_budget(&self, client: &str) -> Option<usize> {
        let bytes = self
            .result_budget_by_client
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(client))
            .map_or(self.result_budget_bytes, |(_, bytes)| *bytes);
        (bytes > 0).then(|| bytes.max(MIN_RESULT_BUDGET))
    }
}

/// Parses `builtin` (the compiled-in file `name`), merges `<config_dir>/<name>`
/// over it when that file exists, and deserializes the result.
pub fn load_layered<T: DeserializeOwned>(
    name: &str,
    builtin: &str,
    config_dir: &Path,
) -> Result<T, ConfigError> {
    let builtin_path = PathBuf::from(format!("<built-in>/config/{name}"));
    let mut merged = parse_yaml(builtin, &builtin_path)?;
    let user_path = config_dir.join(name);
    let mut source = builtin_path;
    match std::fs::read_to_string(&user_path) {
        Ok(text) => {
            let user = parse_yaml(&text, &user_path)?;
            merge(&mut merged, user);
            source = user_path;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ConfigError::Read {
                file: user_path,
                source,
            });
        }
    }
    serde_json::from_value(merged).map_err(|e| ConfigError::Invalid {
        file: source,
        message: without_values(&e.to_string()),
    })
}

/// A deserialization error without the values it quotes: a key pasted where a
/// variable name or a number belongs must not be echoed into errors and logs.
/// `invalid type: string "sk-…", expected a sequence` becomes `invalid type: a
/// string (value not shown), expected a sequence`; unknown variants likewise.
/// Field names (`unknown field `dayly_usd``) stay: they are what the user typed as keys.
pub fn without_values(message: &str) -> String {
    let message = redact_after(message, "string \"", '"', "a string (value not shown)");
    redact_after(
        &message,
        "unknown variant `",
        '`',
        "unknown variant (value not shown)",
    )
}

/// Replaces each `marker…close` (backslash escapes honoured) with `replacement`.
fn redact_after(text: &str, marker: &str, close: char, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(marker) {
        out.push_str(&rest[..pos]);
        out.push_str(replacement);
        let quoted = &rest[pos + marker.len()..];
        let mut end = quoted.len();
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == close {
                end = i + c.len_utf8();
                break;
            }
        }
        rest = &quoted[end..];
    }
    out.push_str(rest);
    out
}

/// Parses YAML text into a JSON value, reporting syntax errors with file and line.
pub fn parse_yaml(text: &str, file: &Path) -> Result<serde_json::Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    yaml_serde::from_str::<serde_json::Value>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        }
    })
}

/// Deep merge: objects merge key by key, anything else in `over` replaces `base`.
pub fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(base), serde_json::Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Daemon-wide limits for one tool, across all sessions.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolLimits {
    /// Calls per minute; absent = unlimited.
    pub rpm: Option<u32>,
    /// Calls running at once; absent = unlimited.
    pub concurrency: Option<u32>,
    /// Model tokens (prompt + answer) per minute; absent = unlimited. See `tools/limits.rs`
    /// for how a call is counted before its usage is known.
    pub tpm: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_server_yaml_parses() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::load(dir.path()).unwrap();
        assert_eq!(config.idle_timeout_secs, 1800);
    }

    #[test]
    fn user_file_overrides_only_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.yaml"), "idle_timeout_secs: 5\n").unwrap();
        let config = ServerConfig::load(dir.path()).unwrap();
        assert_eq!(config.idle_timeout_secs, 5);
        assert_eq!(config.shutdown_deadline_secs, 10);
    }

    #[test]
    fn result_budgets_by_client_merge_over_the_built_in_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::load(dir.path()).unwrap();
        assert_eq!(config.result_budget("claude-code"), Some(32 * 1024));
        assert_eq!(
            config.result_budget("zend-cli"),
            None,
            "zend ask prints whole answers"
        );
        std::fs::write(
            dir.path().join("server.yaml"),
            "result_budget_by_client:\n  Codex-MCP-Client: 40000\n  tiny: 10\n",
        )
        .unwrap();
        let config = ServerConfig::load(dir.path()).unwrap();
        assert_eq!(config.result_budget("codex-mcp-client"), Some(40_000));
        assert_eq!(config.result_budget("tiny"), Some(MIN_RESULT_BUDGET));
        assert_eq!(
            config.result_budget("zend-cli"),
            None,
            "built-in entries stay"
        );
        assert_eq!(config.result_budget("other"), Some(32 * 1024));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("server.yaml"),
            "idle_timeout_secs: 5\n  bad: [\n",
        )
        .unwrap();
        let err = ServerConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("server.yaml:2"), "{err}");
    }

    #[test]
    fn values_are_not_echoed_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "sk-zen-SECRET-\\\"quoted\\\"-tail";
        std::fs::write(
            dir.path().join("server.yaml"),
            format!("disabled_tools: \"{secret}\"\n"),
        )
        .unwrap();
        let err = ServerConfig::load(dir.path()).unwrap_err().to_string();
        assert!(!err.contains("SECRET") && !err.contains("tail"), "{err}");
        assert!(
            err.contains("invalid type: a string (value not shown), expected a sequence"),
            "{err}"
        );
        assert_eq!(
            without_values("unknown variant `sk-x`, expected `openai` or `azure`"),
            "unknown variant (value not shown), expected `openai` or `azure`"
        );
    }

    #[test]
    fn unknown_keys_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.yaml"), "idle_timeout: 5\n").unwrap();
        let err = ServerConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("idle_timeout"), "{err}");
    }
}
