//! What `listmodels` and `zend models [--json]` show: available models with prices and
//! capabilities, and which providers are not configured and how to configure them.

use std::fmt::Write as _;

use serde::Serialize;

use super::config::{Api, Category, Wire};
use super::registry::{Capabilities, Registry, ResolvedModel};

/// The whole listing; serializes as the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelListing {
    pub default_model: String,
    pub models: Vec<ListedModel>,
    pub providers: Vec<ProviderStatus>,
    /// Models known to the compiled-in LiteLLM map (callable as `provider/model`).
    pub litellm_map_models: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedModel {
    pub name: String,
    pub provider: String,
    pub upstream_model: String,
    pub aliases: Vec<String>,
    pub context_window: Option<u64>,
    pub max_output: Option<u64>,
    /// USD per million tokens; `None` = unknown.
    pub input_per_million: Option<f64>,
    pub output_per_million: Option<f64>,
    pub cached_input_per_million: Option<f64>,
    pub capabilities: Capabilities,
    pub score: u8,
    pub category: Category,
    pub description: Option<String>,
    /// `responses`: called through OpenAI's Responses API (slow, long timeouts).
    pub api: Api,
    /// Whole-call timeout in seconds.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderStatus {
    pub name: String,
    pub wire: Wire,
    pub configured: bool,
    /// Why not, and what to set.
    pub reason: Option<String>,
    /// From `*_ALLOWED_MODELS`, when set.
    pub restricted_to: Option<Vec<String>>,
}

impl ModelListing {
    pub(crate) fn build(registry: &Registry, available: Vec<ResolvedModel>) -> Self {
        let models = available
            .into_iter()
            .map(|m| {
                let prices = m.info.prices.as_ref();
                ListedModel {
                    input_per_million: prices.map(|p| p.input_per_million()),
                    output_per_million: prices.map(|p| p.output_per_million()),
                    cached_input_per_million: prices.and_then(|p| p.cache_read).map(|c| c * 1e6),
                    name: m.name,
                    provider: m.provider,
                    upstream_model: m.upstream_model,
                    aliases: m.aliases,
                    context_window: m.info.context_window,
                    max_output: m.info.max_output,
                    capabilities: m.info.capabilities,
                    score: m.info.score,
                    category: m.info.category,
                    description: m.info.description,
                    api: m.endpoint.api,
                    timeout_secs: m.info.timeout.as_secs(),
                }
            })
            .collect();
        let providers = registry
            .providers
            .values()
            .map(|p| ProviderStatus {
                name: p.name.clone(),
                wire: p.config.wire,
                configured: p.unconfigured.is_none(),
                reason: p.unconfigured.clone(),
                restricted_to: p.allowed.as_ref().map(|(_, names)| names.clone()),
            })
            .collect();
        Self {
            default_model: registry.default_model.clone(),
            models,
            providers,
            litellm_map_models: super::litellm::len(),
        }
    }

    /// Plain text for the `listmodels` tool and `zend models`.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Default model: {}", self.default_model);
        if self.models.is_empty() {
            let _ = writeln!(out, "\nNo models available: configure a provider below.");
        }
        let mut provider = "";
        for m in &self.models {
            if m.provider != provider {
                provider = &m.provider;
                let _ = writeln!(out, "\n## {provider}");
            }
            let _ = write!(out, "- {}", m.name);
            if !m.aliases.is_empty() {
                let _ = write!(out, " (aliases: {})", m.aliases.join(", "));
            }
            if m.upstream_model != m.name {
                let _ = write!(out, " → {}", m.upstream_model);
            }
            let _ = writeln!(out);
            let context = m.context_window.map_or("?".to_owned(), tokens);
            let output = m.max_output.map_or("?".to_owned(), tokens);
            let price = match (m.input_per_million, m.output_per_million) {
                (Some(i), Some(o)) => format!("${} in / ${} out per 1M tokens", money(i), money(o)),
                _ => "cost unknown".to_owned(),
            };
            let caps = &m.capabilities;
            let flags: Vec<&str> = [
                (caps.vision, "vision"),
                (caps.tools, "tools"),
                (caps.json_mode, "json"),
                (caps.reasoning, "reasoning"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
            let category = match m.category {
                Category::Fast => "fast",
                Category::Balanced => "balanced",
                Category::Reasoning => "reasoning",
            };
            let _ = write!(
                out,
                "  context {context}, output {output}; {price}; {category}, score {}{}{}",
                m.score,
                if flags.is_empty() { "" } else { "; " },
                flags.join(", ")
            );
            if m.api == Api::Responses {
                let _ = write!(
                    out,
                    "; Responses API (may think for minutes; timeout {} min)",
                    m.timeout_secs.div_ceil(60)
                );
            }
            let _ = writeln!(out);
        }
        let unconfigured: Vec<&ProviderStatus> =
            self.providers.iter().filter(|p| !p.configured).collect();
        if !unconfigured.is_empty() {
            let _ = writeln!(out, "\n## Not configured");
            for p in unconfigured {
                let _ = writeln!(
                    out,
                    "- {}: {}",
                    p.name,
                    p.reason.as_deref().unwrap_or("unknown")
                );
            }
        }
        let _ = writeln!(
            out,
            "\nAny of the {} models in LiteLLM's map can be named as provider/model.",
            self.litellm_map_models
        );
        out
    }
}

fn tokens(n: u64) -> String {
    if n >= 1_000_000 {
        let millions = format!("{:.1}", n as f64 / 1e6);
        format!("{}M", millions.trim_end_matches(".0"))
    } else if n >= 1000 {
        format!("{}K", n / 1000)
    } else {
        n.to_string()
    }
}

fn money(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}
