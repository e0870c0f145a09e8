//! `ProviderError`: every way a model call or a model lookup can fail.
//!
//! Messages say what to do next and never contain a key: upstream bodies are cut to a
//! few hundred characters and scrubbed of the key that was sent (see `http::scrub`).
//! Callers branch on the variant (or on [`ProviderError::is_retryable`]); the MCP layer
//! maps them to client errors in one place.

use std::time::Duration;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The name matches no model, alias or provider prefix.
    #[error("unknown model `{name}`; available: {}", list_or_none(.available))]
    UnknownModel {
        name: String,
        available: Vec<String>,
    },

    /// The model exists but its provider has no key / endpoint in the environment.
    #[error("model `{model}` needs provider `{provider}`, which is not configured: {hint}")]
    NotConfigured {
        provider: String,
        model: String,
        hint: String,
    },

    /// A `*_ALLOWED_MODELS` variable excludes the model.
    #[error(
        "model `{model}` is not allowed by {variable} (allowed: {allowed}); change {variable} or pick another model"
    )]
    NotAllowed {
        model: String,
        variable: String,
        allowed: String,
    },

    /// 401/403: the key is missing, wrong or lacks access.
    #[error("{provider} rejected the API key for `{model}` ({message}); check {key_hint}")]
    Auth {
        provider: String,
        model: String,
        key_hint: String,
        message: String,
    },

    /// 429 after retries.
    #[error("{provider} rate-limited `{model}` ({message}); wait{}, or configure a fallback model", retry_hint(.retry_after))]
    RateLimited {
        provider: String,
        model: String,
        retry_after: Option<Duration>,
        message: String,
    },

    /// The prompt does not fit the model's context window (estimated before the call, or upstream said so).
    #[error(
        "the prompt is too long for `{model}` ({message}); shorten it or use a model with a larger context window"
    )]
    ContextWindowExceeded { model: String, message: String },

    /// Upstream refused the content (safety filter).
    #[error(
        "{provider} refused the request for `{model}` on content-policy grounds ({message}); rephrase the request or try another model"
    )]
    ContentPolicy {
        provider: String,
        model: String,
        message: String,
    },

    /// Other 4xx: the request is wrong for this model; retrying will not help.
    #[error(
        "{provider} rejected the request for `{model}` (HTTP {status}: {message}); retrying will not help: check the model name and the request, or use another model"
    )]
    BadRequest {
        provider: String,
        model: String,
        status: u16,
        message: String,
    },

    /// 408/409/5xx after retries.
    #[error(
        "{provider} failed for `{model}` (HTTP {status}: {message}); try again later or use another model"
    )]
    Server {
        provider: String,
        model: String,
        status: u16,
        message: String,
    },

    /// Could not connect, or the connection broke mid-answer.
    #[error(
        "cannot reach {provider} for `{model}` ({message}); check the network and the base URL"
    )]
    Connection {
        provider: String,
        model: String,
        message: String,
    },

    /// The connect or whole-call timeout elapsed.
    #[error("{provider} did not answer for `{model}` within {}s; raise `timeout_secs` for the model or try another", .after.as_secs_f64())]
    Timeout {
        provider: String,
        model: String,
        after: Duration,
    },

    /// The caller went away (its future was dropped or its token cancelled).
    #[error("the call was cancelled")]
    Cancelled,

    /// The model failed repeatedly and is cooling down; no fallback was available.
    #[error("`{model}` failed repeatedly and is paused for {}s more; retry later or configure fallbacks", .remaining.as_secs().max(1))]
    CoolingDown { model: String, remaining: Duration },

    /// Upstream answered with something this adapter cannot parse.
    #[error(
        "{provider} sent an unexpected answer for `{model}`: {message}; try again, or use another model if it persists"
    )]
    InvalidResponse {
        provider: String,
        model: String,
        message: String,
    },

    /// `models.yaml` (built-in or the user's) is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The shared HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ProviderError {
    /// Worth retrying the same model (after a backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Connection { .. }
                | Self::Timeout { .. }
        )
    }

    /// Worth moving on to the model's fallbacks once retries ran out.
    pub fn allows_fallback(&self) -> bool {
        self.is_retryable()
            || matches!(
                self,
                Self::Auth { .. } | Self::CoolingDown { .. } | Self::NotConfigured { .. }
            )
    }

    /// A short stable name for logs and ledger records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownModel { .. } => "unknown_model",
            Self::NotConfigured { .. } => "not_configured",
            Self::NotAllowed { .. } => "not_allowed",
            Self::Auth { .. } => "auth",
            Self::RateLimited { .. } => "rate_limited",
            Self::ContextWindowExceeded { .. } => "context_window_exceeded",
            Self::ContentPolicy { .. } => "content_policy",
            Self::BadRequest { .. } => "bad_request",
            Self::Server { .. } => "server",
            Self::Connection { .. } => "connection",
            Self::Timeout { .. } => "timeout",
            Self::Cancelled => "cancelled",
            Self::CoolingDown { .. } => "cooling_down",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Config(_) => "config",
            Self::Client(_) => "client",
        }
    }

    /// The upstream's Retry-After, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none — set a provider key (see `zend models`)".to_owned()
    } else {
        items.join(", ")
    }
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" {}s", d.as_secs().max(1)),
        None => " a little".to_owned(),
    }
}
