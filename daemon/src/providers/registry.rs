//! The model registry: names → provider, upstream id and everything known about the model.
//!
//! Built once from [`ModelsConfig`] and an [`Env`] snapshot. Resolution follows LiteLLM:
//! an exact model name or alias from the config; else `provider/model` where only the
//! first segment is the provider; else a bare name matched by a provider's
//! `bare_prefixes` (`gpt-`, `claude-`, …), by Zen's `CUSTOM_MODEL_NAME`, or by LiteLLM's
//! map. Numbers the config leaves out come from LiteLLM's map.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::adapter::HeaderNames;
use super::config::{
    Api, Category, ModelConfig, ModelsConfig, ProviderConfig, Settings, TemperatureRule, Wire,
};
use super::cost::Prices;
use super::env::{ApiKey, Env};
use super::types::ReasoningEffort;
use super::{ProviderError, litellm};

/// What a model can do; parameters it cannot take are dropped before the call.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Capabilities {
    pub vision: bool,
    pub tools: bool,
    pub json_mode: bool,
    pub reasoning: bool,
    pub temperature: TemperatureRule,
    /// Most image data one request may carry, in MB (all images together).
    pub max_image_mb: f64,
}

/// The image data a request may carry when `models.yaml` does not say
/// (Zen's figures): Anthropic 5 MB, Gemini 32 MB, a custom endpoint 40 MB,
/// anyone else 20 MB.
fn default_max_image_mb(provider: &str, wire: Wire) -> f64 {
    match (provider, wire) {
        (_, Wire::Anthropic) => 5.0,
        (_, Wire::Gemini) => 32.0,
        ("custom" | "ollama" | "lm_studio" | "hosted_vllm", _) => 40.0,
        _ => 20.0,
    }
}

/// Everything known about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub context_window: Option<u64>,
    pub max_output: Option<u64>,
    pub capabilities: Capabilities,
    /// The reasoning efforts the model accepts; empty = any.
    pub reasoning_efforts: Vec<ReasoningEffort>,
    /// `None` = cost unknown.
    pub prices: Option<Prices>,
    /// 1–20 for auto mode (10 when not configured).
    pub score: u8,
    pub category: Category,
    pub description: Option<String>,
    pub fallbacks: Vec<String>,
    pub context_window_fallbacks: Vec<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The model is in LiteLLM's map.
    pub in_litellm_map: bool,
}

/// A model name resolved to where and how to call it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// Canonical name: the config entry's name, or `provider/upstream_model`.
    pub name: String,
    pub provider: String,
    /// The id sent upstream (Azure: the deployment).
    pub upstream_model: String,
    pub aliases: Vec<String>,
    pub info: ModelInfo,
    pub(crate) endpoint: Endpoint,
}

/// How to reach a model: URL, key, wire format. The key never leaves this struct
/// except into a request header.
#[derive(Clone, PartialEq)]
pub(crate) struct Endpoint {
    pub wire: Wire,
    /// OpenAI and Azure wires: chat completions or the Responses API (`Chat` on the others).
    pub api: Api,
    pub base_url: String,
    pub key: Option<ApiKey>,
    pub key_hint: String,
    pub headers: Vec<(String, String)>,
    pub extra_body: Option<serde_json::Value>,
    pub api_version: Option<String>,
    pub max_tokens_field: String,
    pub cost_from_upstream: bool,
    /// Send `prompt_cache_key` (OpenAI wire).
    pub prompt_cache_key: bool,
    /// `cache_control` TTL (Anthropic wire); `None` = the provider's default (5 minutes).
    pub cache_ttl: Option<super::config::CacheTtl>,
}

/// Header values left out: a configured header may carry a key (`${VAR}`).
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("wire", &self.wire)
            .field("base_url", &self.base_url)
            .field("key", &self.key)
            .field("key_hint", &self.key_hint)
            .field("headers", &HeaderNames(&self.headers))
            .field("extra_body", &self.extra_body.is_some())
            .field("api_version", &self.api_version)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("cost_from_upstream", &self.cost_from_upstream)
            .finish()
    }
}

/// A provider row resolved against the environment.
#[derive(Clone)]
pub(crate) struct ProviderState {
    pub name: String,
    pub config: ProviderConfig,
    pub base_url: Option<String>,
    pub key: Option<ApiKey>,
    pub key_hint: String,
    pub headers: Vec<(String, String)>,
    pub api_version: Option<String>,
    /// `(variable, lower-cased names)` from `*_ALLOWED_MODELS`.
    pub allowed: Option<(String, Vec<String>)>,
    /// Why the provider is not offered; `None` = configured.
    pub unconfigured: Option<String>,
}

/// Header values left out, as for [`Endpoint`].
impl std::fmt::Debug for ProviderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderState")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("key", &self.key)
            .field("key_hint", &self.key_hint)
            .field("headers", &HeaderNames(&self.headers))
            .field("api_version", &self.api_version)
            .field("allowed", &self.allowed)
            .field("unconfigured", &self.unconfigured)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Registry {
    pub settings: Settings,
    pub providers: BTreeMap<String, ProviderState>,
    pub models: BTreeMap<String, ModelConfig>,
    /// Lower-cased name or alias → model name.
    index: HashMap<String, String>,
    /// Zen's `CUSTOM_MODEL_NAME` and similar: bare name → provider.
    env_models: Vec<(String, String)>,
    /// Per-model `base_url` / `api_key`, expanded against the environment.
    overrides: HashMap<String, ModelOverride>,
    pub default_model: String,
}

#[derive(Debug, Default)]
struct ModelOverride {
    base_url: Option<String>,
    has_key: bool,
    key: Option<ApiKey>,
    /// The variables `api_key` names (`${VAR}`), for the error when one is unset.
    key_vars: Vec<String>,
}

impl Registry {
    pub fn new(config: ModelsConfig, env: &Env) -> Self {
        let providers: BTreeMap<String, ProviderState> = config
            .providers
            .iter()
            .map(|(name, row)| (name.clone(), provider_state(name, row, env)))
            .collect();
        let mut index = HashMap::new();
        for (name, model) in &config.models {
            for alias in &model.aliases {
                index.insert(alias.to_lowercase(), name.clone());
            }
        }
        // Names win over aliases.
        for name in config.models.keys() {
            index.insert(name.to_lowercase(), name.clone());
        }
        let env_models = providers
            .values()
            .filter_map(|p| {
                let var = p.config.model_env.as_ref()?;
                Some((env.get(var)?.to_owned(), p.name.clone()))
            })
            .collect();
        let overrides = config
            .models
            .iter()
            .filter(|(_, m)| m.base_url.is_some() || m.api_key.is_some())
            .map(|(name, m)| {
                let over = ModelOverride {
                    base_url: m
                        .base_url
                        .as_deref()
                        .and_then(|u| env.expand(u))
                        .map(normalize_url),
                    has_key: m.api_key.is_some(),
                    key: m
                        .api_key
                        .as_deref()
                        .and_then(|k| env.expand(k))
                        .map(ApiKey::new),
                    key_vars: m
                        .api_key
                        .as_deref()
                        .map(referenced_vars)
                        .unwrap_or_default(),
                };
                (name.clone(), over)
            })
            .collect();
        Self {
            settings: config.settings,
            providers,
            models: config.models,
            index,
            env_models,
            overrides,
            default_model: env.get("DEFAULT_MODEL").unwrap_or("auto").to_owned(),
        }
    }

    /// Resolves without checking whether the provider is configured or allowed.
    pub fn lookup(&self, name: &str) -> Option<ResolvedModel> {
        let name = name.trim();
        if let Some(canonical) = self.index.get(&name.to_lowercase()) {
            let config = self.models.get(canonical)?;
            return self.build(
                canonical,
                &config.provider,
                config.model.as_deref(),
                Some(config),
            );
        }
        if let Some((prefix, rest)) = name.split_once('/')
            && self.providers.contains_key(prefix)
            && !rest.is_empty()
        {
            let configured = self.models.iter().find(|(n, m)| {
                m.provider == prefix && m.model.as_deref().unwrap_or(n.as_str()) == rest
            });
            return match configured {
                Some((n, m)) => self.build(n, prefix, m.model.as_deref(), Some(m)),
                None => self.build(name, prefix, Some(rest), None),
            };
        }
        if let Some((_, provider)) = self.env_models.iter().find(|(m, _)| m == name) {
            return self.build(&format!("{provider}/{name}"), provider, Some(name), None);
        }
        let lower = name.to_lowercase();
        let by_prefix = self.providers.values().find(|p| {
            p.config
                .bare_prefixes
                .iter()
                .any(|prefix| lower.starts_with(prefix.as_str()))
        });
        if let Some(p) = by_prefix {
            return self.build(name, &p.name, Some(name), None);
        }
        let entry = litellm::lookup(name)?;
        let provider = self.providers.values().find(|p| {
            p.name == entry.provider || p.config.litellm_prefix.as_deref() == Some(entry.provider)
        })?;
        let upstream = name
            .strip_prefix(&format!("{}/", entry.provider))
            .unwrap_or(name);
        self.build(name, &provider.name.clone(), Some(upstream), None)
    }

    /// Checks that the model's provider is configured and the model allowed.
    pub fn check_available(&self, model: &ResolvedModel) -> Result<(), ProviderError> {
        let Some(provider) = self.providers.get(&model.provider) else {
            return Err(ProviderError::UnknownModel {
                name: model.name.clone(),
                available: Vec::new(),
            });
        };
        if let Some(reason) = &provider.unconfigured {
            return Err(ProviderError::NotConfigured {
                provider: provider.name.clone(),
                model: model.name.clone(),
                hint: reason.clone(),
            });
        }
        // A model whose own `api_key` names an unset variable is not called keyless.
        if let Some(o) = self.overrides.get(&model.name)
            && o.has_key
            && o.key.is_none()
        {
            return Err(ProviderError::NotConfigured {
                provider: provider.name.clone(),
                model: model.name.clone(),
                hint: format!(
                    "its `api_key` in models.yaml names {}, which is not set; set it in zen's .env or zend's environment",
                    if o.key_vars.is_empty() {
                        "a variable".to_owned()
                    } else {
                        o.key_vars.join(", ")
                    }
                ),
            });
        }
        if let Some((variable, allowed)) = &provider.allowed {
            let names = std::iter::once(model.name.as_str())
                .chain(std::iter::once(model.upstream_model.as_str()))
                .chain(model.aliases.iter().map(String::as_str));
            let full = format!("{}/{}", model.provider, model.upstream_model);
            let ok = names
                .chain(std::iter::once(full.as_str()))
                .any(|n| allowed.contains(&n.to_lowercase()));
            if !ok {
                return Err(ProviderError::NotAllowed {
                    model: model.name.clone(),
                    variable: variable.clone(),
                    allowed: allowed.join(","),
                });
            }
        }
        Ok(())
    }

    /// Configured, allowed, non-hidden models of the config, plus the models
    /// named elsewhere: by `CUSTOM_MODEL_NAME` and the like, by an allow-list
    /// (`OPENAI_ALLOWED_MODELS=gpt-4o-mini` names a model the config may not
    /// list), and `discovered` (`(provider, model)` from a proxy's `/models`).
    /// Those carry what LiteLLM's map knows of them. Each model once.
    pub fn available(&self, discovered: &[(String, String)]) -> Vec<ResolvedModel> {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<ResolvedModel> = self
            .models
            .iter()
            .filter(|(_, m)| !m.hidden)
            .filter_map(|(name, m)| self.build(name, &m.provider, m.model.as_deref(), Some(m)))
            .chain(
                self.env_models
                    .iter()
                    .map(|(m, p)| (p, m))
                    .chain(discovered.iter().map(|(p, m)| (p, m)))
                    .filter_map(|(p, m)| self.build(&format!("{p}/{m}"), p, Some(m), None)),
            )
            .chain(self.allow_listed())
            .filter(|m| self.check_available(m).is_ok())
            .filter(|m| seen.insert((m.provider.clone(), m.upstream_model.to_lowercase())))
            .collect();
        out.sort_by(|a, b| {
            (
                a.provider.as_str(),
                std::cmp::Reverse(a.info.score),
                a.name.as_str(),
            )
                .cmp(&(
                    b.provider.as_str(),
                    std::cmp::Reverse(b.info.score),
                    b.name.as_str(),
                ))
        });
        out
    }

    /// The models each configured provider's allow-list names, resolved as
    /// the name alone when that reaches the provider (`gpt-4o-mini`), else as
    /// `provider/name`.
    fn allow_listed(&self) -> impl Iterator<Item = ResolvedModel> + '_ {
        self.providers
            .values()
            .filter(|p| p.unconfigured.is_none())
            .flat_map(move |p| {
                let names = p.allowed.iter().flat_map(|(_, names)| names.iter());
                names.filter_map(move |name| {
                    self.lookup(name)
                        .filter(|m| m.provider == p.name)
                        .or_else(|| self.lookup(&format!("{}/{name}", p.name)))
                        .filter(|m| m.provider == p.name)
                })
            })
    }

    fn build(
        &self,
        name: &str,
        provider: &str,
        upstream: Option<&str>,
        config: Option<&ModelConfig>,
    ) -> Option<ResolvedModel> {
        let state = self.providers.get(provider)?;
        let upstream = upstream.unwrap_or(name).to_owned();
        let entry = litellm_entry(provider, &state.config, &upstream);
        let caps = config.map(|c| c.capabilities.clone()).unwrap_or_default();
        let wire = state.config.wire;
        let reasoning = caps
            .reasoning
            .or(entry.map(|e| e.reasoning))
            .unwrap_or(false);
        let last_segment = upstream.rsplit('/').next().unwrap_or(&upstream);
        let openai_reasoning = matches!(wire, Wire::Openai | Wire::Azure)
            && reasoning
            && ["o1", "o3", "o4", "gpt-5"]
                .iter()
                .any(|p| last_segment.starts_with(p))
            && !last_segment.contains("chat");
        let capabilities = Capabilities {
            vision: caps.vision.or(entry.map(|e| e.vision)).unwrap_or(false),
            tools: caps.tools.or(entry.map(|e| e.tools)).unwrap_or(false),
            json_mode: caps.json_mode.unwrap_or(match wire {
                Wire::Anthropic => false,
                Wire::Gemini => true,
                Wire::Openai | Wire::Azure => entry.is_none_or(|e| e.json_mode),
            }),
            reasoning,
            temperature: caps.temperature.unwrap_or(if openai_reasoning {
                TemperatureRule::Fixed
            } else {
                TemperatureRule::Supported
            }),
            max_image_mb: caps
                .max_image_mb
                .unwrap_or_else(|| default_max_image_mb(provider, wire)),
        };
        let api = match wire {
            Wire::Openai | Wire::Azure => config
                .and_then(|c| c.api)
                .or(state.config.api)
                .or_else(|| {
                    // Only the map's entry for this provider says how this provider serves
                    // it (OpenRouter and a LiteLLM proxy serve `gpt-5-pro` as chat).
                    let own = |e: &&litellm::LiteLlmEntry| {
                        e.provider == provider
                            || state.config.litellm_prefix.as_deref() == Some(e.provider)
                    };
                    entry.filter(own).map(|e| {
                        if e.responses_only() {
                            Api::Responses
                        } else {
                            Api::Chat
                        }
                    })
                })
                .unwrap_or_default(),
            Wire::Anthropic | Wire::Gemini => Api::Chat,
        };
        let settings = &self.settings;
        let default_timeout = match api {
            Api::Chat => settings.timeout_secs,
            Api::Responses => settings.responses_timeout_secs,
        };
        let info = ModelInfo {
            context_window: config
                .and_then(|c| c.context_window)
                .or(entry.and_then(|e| e.max_input_tokens)),
            max_output: config
                .and_then(|c| c.max_output)
                .or(entry.and_then(|e| e.max_output_tokens)),
            capabilities,
            reasoning_efforts: caps.reasoning_efforts.clone(),
            prices: Prices::merge(
                config.and_then(|c| c.prices.as_ref()),
                entry.and_then(|e| e.prices.as_ref()),
            ),
            score: config.and_then(|c| c.score).unwrap_or(10).clamp(1, 20),
            category: config.and_then(|c| c.category).unwrap_or(if reasoning {
                Category::Reasoning
            } else {
                Category::Balanced
            }),
            description: config.and_then(|c| c.description.clone()),
            fallbacks: config.map(|c| c.fallbacks.clone()).unwrap_or_default(),
            context_window_fallbacks: config
                .map(|c| c.context_window_fallbacks.clone())
                .unwrap_or_default(),
            timeout: Duration::from_secs(
                config
                    .and_then(|c| c.timeout_secs)
                    .unwrap_or(default_timeout),
            ),
            connect_timeout: Duration::from_secs(
                config
                    .and_then(|c| c.connect_timeout_secs)
                    .unwrap_or(settings.connect_timeout_secs),
            ),
            in_litellm_map: entry.is_some(),
        };
        let overrides = self.overrides.get(name);
        let base_url = overrides
            .and_then(|o| o.base_url.clone())
            .or_else(|| state.base_url.clone())
            .unwrap_or_default();
        let key = match overrides {
            Some(o) if o.has_key => o.key.clone(),
            _ => state.key.clone(),
        };
        Some(ResolvedModel {
            name: name.to_owned(),
            provider: provider.to_owned(),
            upstream_model: upstream,
            aliases: config.map(|c| c.aliases.clone()).unwrap_or_default(),
            info,
            endpoint: Endpoint {
                wire,
                api,
                base_url,
                key,
                key_hint: state.key_hint.clone(),
                headers: state.headers.clone(),
                extra_body: state.config.extra_body.clone(),
                api_version: state.api_version.clone(),
                max_tokens_field: state
                    .config
                    .max_tokens_field
                    .clone()
                    .unwrap_or_else(|| "max_tokens".to_owned()),
                cost_from_upstream: state.config.cost_from_upstream,
                prompt_cache_key: state.config.prompt_cache_key,
                cache_ttl: state.config.cache_ttl,
            },
        })
    }
}

fn provider_state(name: &str, row: &ProviderConfig, env: &Env) -> ProviderState {
    let upper = name.to_uppercase();
    let base_url = env
        .get(&format!("{upper}_BASE_URL"))
        .map(str::to_owned)
        .or_else(|| row.base_url.as_deref().and_then(|u| env.expand(u)))
        .map(normalize_url);
    let key_names = &row.key_env;
    let key = env.first(key_names).map(|(_, v)| ApiKey::new(v));
    let key_hint = match key_names.as_slice() {
        [] => "the provider's key".to_owned(),
        [one] => one.clone(),
        many => many.join(" or "),
    };
    let headers = row
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), env.expand(v)?)))
        .collect();
    let api_version = env
        .first(&row.api_version_env)
        .map(|(_, v)| v.to_owned())
        .or_else(|| row.api_version.clone());
    let allowed_vars = if row.allowed_models_env.is_empty() {
        vec![format!("{upper}_ALLOWED_MODELS")]
    } else {
        row.allowed_models_env.clone()
    };
    let allowed = env.first(&allowed_vars).map(|(var, value)| {
        let names = value
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        (var.to_owned(), names)
    });
    let setup = row
        .setup
        .clone()
        .unwrap_or_else(|| format!("set {key_hint}"));
    let unconfigured = if base_url.is_none() {
        Some(format!("no endpoint: {setup}"))
    } else if key.is_none() && row.key_required {
        Some(format!("no API key: {setup}"))
    } else {
        None
    };
    ProviderState {
        name: name.to_owned(),
        config: row.clone(),
        base_url,
        key,
        key_hint,
        headers,
        api_version,
        allowed,
        unconfigured,
    }
}

/// Trims a trailing `/` and adds `http://` to a bare `host:port` (as `OLLAMA_HOST` often is).
fn normalize_url(url: String) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// LiteLLM's entry for a model: `<prefix>/<id>`, then `<id>`, then the id's last segment
/// (OpenRouter's `openai/gpt-4o` is priced as `gpt-4o`).
fn litellm_entry(
    provider: &str,
    row: &ProviderConfig,
    upstream: &str,
) -> Option<&'static litellm::LiteLlmEntry> {
    let prefix = row.litellm_prefix.as_deref().unwrap_or(provider);
    let prefixed = (!prefix.is_empty()).then(|| format!("{prefix}/{upstream}"));
    prefixed
        .as_deref()
        .and_then(litellm::lookup)
        .or_else(|| litellm::lookup(upstream))
        .or_else(|| {
            upstream
                .rsplit_once('/')
                .and_then(|(_, last)| litellm::lookup(last))
        })
}

/// The names in `${NAME}` references (never the text around them, which could be a key).
fn referenced_vars(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    names
}
