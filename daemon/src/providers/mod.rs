//! providers: the ONE place every model call goes through (DESIGN.md invariant 2).
//!
//! LiteLLM's ideas in Rust: `provider/model` naming, a provider table in config
//! (prefix → base URL, key variable, wire format, headers), LiteLLM's price/context map
//! compiled in, and thin wire adapters — OpenAI chat completions (also Azure,
//! OpenRouter, xAI, Groq, DeepSeek, Mistral, Together, Fireworks, Ollama, LM Studio, vLLM,
//! a LiteLLM proxy, any OpenAI-compatible URL), OpenAI's Responses API (the models only it
//! serves: `gpt-5-pro`, `o3-pro`, the codex models), Anthropic Messages and Gemini
//! generateContent — over one shared reqwest client. This module knows nothing about MCP,
//! gRPC, threads or the ledger: tools hand it a [`CompletionRequest`] and get a
//! [`Completion`] back (with every attempt, for the ledger).
//!
//! # API
//! - [`Env`]: environment snapshot (process env over `<config_dir>/.env`; `Env::from_map` in tests).
//! - [`ModelsConfig`]: `config/models.yaml` (compiled in) merged with `<config_dir>/models.yaml`.
//! - [`Providers`]: the runtime. `Providers::new(config, &env)` / `Providers::load(dir, &env)`;
//!   `resolve(name) -> ResolvedModel`; `complete(request, events) -> Completion`
//!   (`complete_detailed` also returns the attempts of a call that failed);
//!   `available()`, `pick_auto(Category)`, `default_model()`, `listing() -> ModelListing`
//!   (`Serialize`, plus `render_text()`).
//! - [`estimate_tokens`] / [`estimate_request_tokens`]: the characters/4 estimate.
//! - Types: [`Message`], [`Role`], [`ContentPart`], [`CompletionRequest`], [`Completion`],
//!   [`Usage`], [`Cost`] (`usd: None` = unknown, never 0), [`StreamEvent`], [`Attempt`],
//!   [`ProviderError`].
//!
//! # Environment
//! Keys: `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`/`GOOGLE_API_KEY`,
//! `OPENROUTER_API_KEY`, `XAI_API_KEY`, `AZURE_OPENAI_API_KEY` + `AZURE_OPENAI_ENDPOINT`
//! (+ `AZURE_OPENAI_API_VERSION`), `GROQ_API_KEY`, `DEEPSEEK_API_KEY`, `MISTRAL_API_KEY`,
//! `TOGETHER_API_KEY`, `FIREWORKS_API_KEY`, `LITELLM_API_KEY` + `LITELLM_BASE_URL`,
//! `CUSTOM_API_URL` + `CUSTOM_API_KEY` + `CUSTOM_MODEL_NAME`, `OLLAMA_HOST`,
//! `LM_STUDIO_API_BASE`, `HOSTED_VLLM_API_BASE`. `<PROVIDER>_BASE_URL` overrides any
//! provider's base URL. `<PROVIDER>_ALLOWED_MODELS` (Gemini: `GOOGLE_ALLOWED_MODELS`)
//! restricts a provider to the listed names; `DEFAULT_MODEL` names the default.
//!
//! # Files
//! `mod.rs` (this map, token estimate), `types.rs` (request/result), `error.rs`,
//! `env.rs` (Env, ApiKey), `config.rs` (ModelsConfig), `litellm.rs` (compiled-in map),
//! `registry.rs` (resolution, ModelInfo), `cost.rs`, `http.rs` (client, SSE, error
//! mapping), `adapter.rs` (trait, drop_params, adapter per endpoint), `openai.rs`,
//! `responses.rs`, `anthropic.rs`, `gemini.rs`,
//! `runtime.rs` (Providers: retries, fallbacks, cooldowns), `listing.rs`.

mod adapter;
mod anthropic;
pub mod checks;
pub mod config;
pub mod cost;
mod env;
mod error;
mod gemini;
mod http;
mod listing;
pub mod litellm;
mod openai;
mod registry;
mod responses;
mod runtime;
mod types;

#[cfg(test)]
mod tests;

pub use config::{Api, Category, ModelsConfig, TemperatureRule, Wire};
pub use cost::Prices;
pub use env::{ApiKey, Env, Source as KeySource, parse_dotenv};
pub use error::ProviderError;
pub use http::fetch_json;
pub use listing::{ListedModel, ModelListing, ProviderStatus};
pub use registry::{Capabilities, ModelInfo, ResolvedModel};
pub use runtime::{CompletionFailure, Providers};
pub use types::{
    Attempt, AttemptOutcome, CacheHints, Completion, CompletionRequest, ContentPart, Cost,
    CostSource, FinishReason, Message, ReasoningEffort, Role, StreamEvent, Usage,
};

/// A fast token estimate for budgeting: about four bytes of text per token. One function,
/// so a real tokenizer can replace it later.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// [`estimate_tokens`] over a request's system prompt and messages; an image counts as
/// about a thousand tokens.
pub fn estimate_request_tokens(request: &CompletionRequest) -> u64 {
    const IMAGE_TOKENS: u64 = 1024;
    let system = request.system.as_deref().map_or(0, estimate_tokens);
    let messages: u64 = request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|part| match part {
            ContentPart::Text { text } => estimate_tokens(text),
            ContentPart::Image { .. } => IMAGE_TOKENS,
        })
        .sum();
    system + messages
}
