//! `ModelsConfig`: `config/models.yaml` as plain data — settings, the provider table and models.
//!
//! The built-in file is compiled in; `<config_dir>/models.yaml` is deep-merged over it
//! (see [`crate::config::load_layered`]), so a user's file holds only what it adds or
//! changes. Nothing here touches the network or the environment; [`super::Providers::new`]
//! turns this data into the runtime.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProviderError;
use super::types::ReasoningEffort;

/// The built-in `config/models.yaml`.
pub const MODELS_YAML: &str = include_str!("../../../config/models.yaml");

/// `models.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    #[serde(default)]
    pub settings: Settings,
    /// The provider table: prefix → endpoint, key variables, wire format, headers.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Models by canonical name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
}

impl ModelsConfig {
    /// The built-in file, merged with `<config_dir>/models.yaml` when `config_dir` is given
    /// and the file exists. Errors name the file and line.
    pub fn load(config_dir: Option<&Path>) -> Result<Self, ProviderError> {
        match config_dir {
            Some(dir) => Ok(crate::config::load_layered(
                "models.yaml",
                MODELS_YAML,
                dir,
            )?),
            None => Self::parse(MODELS_YAML, Path::new("<built-in>/config/models.yaml")),
        }
    }

    /// The longest whole-call timeout a model can have, in seconds: what a client waiting
    /// on one model call must allow (models named only as `provider/model` get the
    /// settings' timeouts, so both count).
    pub fn longest_timeout_secs(&self) -> u64 {
        self.models
            .values()
            .filter_map(|m| m.timeout_secs)
            .chain([
                self.settings.timeout_secs,
                self.settings.responses_timeout_secs,
            ])
            .max()
            .unwrap_or(self.settings.timeout_secs)
    }

    /// One YAML document (no layering).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ProviderError> {
        let value = crate::config::parse_yaml(text, file)?;
        serde_json::from_value(value).map_err(|e| {
            ProviderError::Config(crate::config::ConfigError::Invalid {
                file: file.to_path_buf(),
                message: e.to_string(),
            })
        })
    }
}

/// Retry, timeout, cooldown and fallback policy shared by every model.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Retries of one model on 408/409/429/5xx and connection errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry, with jitter, capped by `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// An upstream Retry-After is honoured up to this many seconds.
    pub retry_after_max_secs: u64,
    /// Whole-call timeout (including the streamed body), unless the model sets its own.
    pub timeout_secs: u64,
    /// The same for models called through OpenAI's Responses API (`gpt-5-pro`, `o3-pro`,
    /// the codex models), which may reason for many minutes before they answer.
    pub responses_timeout_secs: u64,
    /// TCP+TLS connect timeout, unless the model sets its own.
    pub connect_timeout_secs: u64,
    /// Failed calls in a row after which a model is cooled down.
    pub cooldown_failures: u32,
    pub cooldown_secs: u64,
    /// Most models tried for one call (the first one included).
    pub max_fallback_hops: usize,
    /// Fallbacks for models that list none.
    pub fallbacks: Vec<String>,
    /// Output tokens reserved when checking a prompt against the context window.
    pub reserve_output_tokens: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            retry_after_max_secs: 60,
            timeout_secs: 600,
            responses_timeout_secs: 1800,
            connect_timeout_secs: 10,
            cooldown_failures: 3,
            cooldown_secs: 30,
            max_fallback_hops: 5,
            fallbacks: Vec::new(),
            reserve_output_tokens: 1024,
        }
    }
}

/// Which of the three adapters speaks to a provider (Azure is the OpenAI adapter with
/// deployment URLs and an `api-key` header).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    Openai,
    Azure,
    Anthropic,
    Gemini,
}

/// Which of OpenAI's two APIs a model on the OpenAI or Azure wire is called through.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Chat Completions (`/chat/completions`), which every OpenAI-compatible server speaks.
    #[default]
    Chat,
    /// The Responses API (`/responses`), the only one some models are served by.
    Responses,
}

/// One row of the provider table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub wire: Wire,
    /// Default base URL; may reference `${VAR}` (unset → the provider is not configured).
    /// `<NAME>_BASE_URL` in the environment always wins.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Variables holding the key, first set one wins.
    #[serde(default)]
    pub key_env: Vec<String>,
    /// Without a key the provider is not offered (false for local servers).
    #[serde(default = "yes")]
    pub key_required: bool,
    /// Extra headers; values may reference `${VAR}` (unset → header omitted).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Merged into every request body (e.g. OpenRouter's `usage: {include: true}`).
    #[serde(default)]
    pub extra_body: Option<serde_json::Value>,
    /// Azure: API version and the variables that override it.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub api_version_env: Vec<String>,
    /// Zen-style restriction variables (comma-separated names); default `<NAME>_ALLOWED_MODELS`.
    #[serde(default)]
    pub allowed_models_env: Vec<String>,
    /// OpenAI wire: `max_tokens` (default) or `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens_field: Option<String>,
    /// OpenAI and Azure wires: the API for this provider's models that neither name one
    /// themselves nor are in LiteLLM's map as this provider's (default: chat).
    #[serde(default)]
    pub api: Option<Api>,
    /// Take cost from the upstream (`x-litellm-response-cost` or `usage.cost`) when given.
    #[serde(default)]
    pub cost_from_upstream: bool,
    /// Key prefix in LiteLLM's map (`gemini/…`); `""` = bare ids. Default: the provider name.
    #[serde(default)]
    pub litellm_prefix: Option<String>,
    /// Bare model names with these prefixes resolve to this provider (`gpt-`, `claude-`).
    #[serde(default)]
    pub bare_prefixes: Vec<String>,
    /// A variable naming one model served here (Zen's `CUSTOM_MODEL_NAME`).
    #[serde(default)]
    pub model_env: Option<String>,
    /// Ask the endpoint's `GET /models` which models it serves (a LiteLLM
    /// proxy), once at start; they are listed and are candidates for `auto`.
    #[serde(default)]
    pub list_models: bool,
    /// How to configure it, shown by `listmodels` when it is not.
    #[serde(default)]
    pub setup: Option<String>,
    /// OpenAI wire: send `prompt_cache_key` (one per thread), so a thread's calls reach the
    /// same prompt cache. Off for providers that reject fields they do not know.
    #[serde(default)]
    pub prompt_cache_key: bool,
    /// Anthropic wire: how long a marked prompt prefix stays cached (`5m`, the default, or
    /// `1h`, whose cache writes cost twice the input price instead of 1.25 times).
    #[serde(default)]
    pub cache_ttl: Option<CacheTtl>,
}

/// How long Anthropic keeps a cached prompt prefix.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum CacheTtl {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

fn yes() -> bool {
    true
}

/// Speed/depth class used by auto mode.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Fast,
    Balanced,
    Reasoning,
}

/// How a model treats `temperature`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TemperatureRule {
    /// Any value in the provider's range.
    #[default]
    Supported,
    /// Only the default (1) is accepted: the parameter is dropped (OpenAI reasoning models).
    Fixed,
    /// Not accepted at all: dropped.
    Unsupported,
}

/// Capability overrides; unset ones come from LiteLLM's map.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesConfig {
    pub vision: Option<bool>,
    pub tools: Option<bool>,
    pub json_mode: Option<bool>,
    /// Reasoning effort (OpenAI wire) / thinking budget (Anthropic, Gemini).
    pub reasoning: Option<bool>,
    pub temperature: Option<TemperatureRule>,
    /// Most image data one request may carry, in MB (all images together).
    pub max_image_mb: Option<f64>,
    /// The reasoning efforts the model accepts (`gpt-5-pro`: only `high`); another one
    /// asked for is moved to the nearest of these. Unset: any.
    #[serde(default)]
    pub reasoning_efforts: Vec<ReasoningEffort>,
}

/// Prices in USD per million tokens (how providers publish them).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
    pub reasoning_output: Option<f64>,
    /// Prices when the prompt is above `above_tokens` (e.g. 200000).
    #[serde(default)]
    pub tiers: Vec<PriceTierConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceTierConfig {
    pub above_tokens: u64,
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cached_input: Option<f64>,
}

/// One model entry. Unset numbers come from LiteLLM's map.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: String,
    /// Upstream model id (Azure: the deployment name). Default: the entry's name.
    #[serde(default)]
    pub model: Option<String>,
    /// OpenAI and Azure wires: `chat` or `responses`. Default: the provider's `api`, else
    /// the Responses API when LiteLLM's map says the model is served only there, else chat.
    #[serde(default)]
    pub api: Option<Api>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Overrides the provider's base URL; may reference `${VAR}`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides the provider's key, as `${ENV_VAR}`.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub context_window: Option<u64>,
    #[serde(default)]
    pub max_output: Option<u64>,
    #[serde(default)]
    pub capabilities: CapabilitiesConfig,
    /// 1–20, for auto mode.
    #[serde(default)]
    pub score: Option<u8>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub prices: Option<PricesConfig>,
    /// Tried in order after retries run out.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Tried when the prompt is too big for this model.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
    /// Hidden from listings and auto mode (still callable by name).
    #[serde(default)]
    pub hidden: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_models_yaml_parses() {
        let config = ModelsConfig::load(None).unwrap();
        assert!(config.providers.contains_key("openai"));
        assert!(
            config
                .models
                .values()
                .all(|m| config.providers.contains_key(&m.provider))
        );
        for (name, model) in &config.models {
            if let Some(score) = model.score {
                assert!((1..=20).contains(&score), "{name}: score {score}");
            }
        }
    }

    #[test]
    fn user_file_extends_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("models.yaml"),
            "models:\n  my-model:\n    provider: custom\n    aliases: [mine]\n",
        )
        .unwrap();
        let config = ModelsConfig::load(Some(dir.path())).unwrap();
        assert!(config.models.contains_key("my-model"));
        assert!(config.models.contains_key("gpt-5"));

        std::fs::write(dir.path().join("models.yaml"), "models:\n  x: [\n").unwrap();
        let err = ModelsConfig::load(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("models.yaml:"), "{err}");
    }

    #[test]
    fn the_longest_timeout_counts_every_model_and_both_defaults() {
        let mut config = ModelsConfig::load(None).unwrap();
        assert_eq!(
            config.longest_timeout_secs(),
            1800,
            "the Responses API default"
        );
        config.settings.responses_timeout_secs = 100;
        assert_eq!(config.longest_timeout_secs(), 600);
        config.models.get_mut("gpt-5").unwrap().timeout_secs = Some(3600);
        assert_eq!(config.longest_timeout_secs(), 3600);
    }
}
