//! The one request type and the one result type every model call uses, whatever the wire.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who said a message. The system prompt is [`CompletionRequest::system`], not a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    /// Base64 image data with its MIME type (`image/png`).
    Image {
        mime: String,
        data_base64: String,
    },
}

impl ContentPart {
    /// Parses a `data:<mime>;base64,<data>` URL.
    pub fn image_data_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("data:")?;
        let (mime, data) = rest.split_once(";base64,")?;
        Some(Self::Image {
            mime: mime.to_owned(),
            data_base64: data.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: vec![ContentPart::Text { text: text.into() }],
        }
    }

    /// The concatenated text parts.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }
}

/// OpenAI-style effort; converted to a thinking budget for Anthropic and Gemini.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningEffort {
    // In increasing order: `nearest_of` compares their ranks.
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// LiteLLM's mapping of effort to an Anthropic thinking budget.
    pub fn budget_tokens(self) -> u64 {
        match self {
            Self::Low => 1024,
            Self::Medium => 2048,
            Self::High => 4096,
        }
    }

    /// `self` if `accepted` is empty or holds it, else the accepted effort nearest to it
    /// (the higher one of two as near).
    pub fn nearest_of(self, accepted: &[Self]) -> Self {
        let rank = |effort: Self| effort as i8;
        accepted
            .iter()
            .copied()
            .min_by_key(|&a| ((rank(a) - rank(self)).abs(), -rank(a)))
            .unwrap_or(self)
    }

    pub fn from_budget(tokens: u64) -> Self {
        match tokens {
            0..=1024 => Self::Low,
            1025..=2048 => Self::Medium,
            _ => Self::High,
        }
    }
}

/// The request every tool builds. `model` may be a name, alias, `provider/model` or `auto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Explicit thinking budget (Anthropic / Gemini); wins over `reasoning_effort` there.
    pub thinking_budget: Option<u64>,
    pub json_mode: bool,
    pub stop: Vec<String>,
    /// Stream from upstream (default). Non-streaming gives the same [`Completion`].
    pub stream: bool,
    /// What stays the same from one call to the next, for providers' prompt caches.
    #[serde(default)]
    pub cache: CacheHints,
}

/// Where a request's prompt stops being the same as the previous call's, said once for
/// every provider: Anthropic marks these places with `cache_control`, OpenAI routes calls
/// with the same `key` to the same cache, the others cache a repeated prefix by themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHints {
    /// Groups the calls of one conversation (OpenAI's `prompt_cache_key`).
    pub key: Option<String>,
    /// The system prompt is the same from call to call.
    pub system: bool,
    /// `(message, part)` indexes: the prompt up to the end of each of these parts is the
    /// same as in the previous call (or will be in the next), oldest first.
    pub breakpoints: Vec<(usize, usize)>,
}

impl CompletionRequest {
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            system: None,
            messages,
            temperature: None,
            max_output_tokens: None,
            reasoning_effort: None,
            thinking_budget: None,
            json_mode: false,
            stop: Vec::new(),
            stream: true,
            cache: CacheHints::default(),
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    /// Anything else, as the upstream spelled it.
    Other(String),
    /// The stream ended without a reason.
    Unknown,
}

impl FinishReason {
    pub fn from_openai(reason: &str) -> Self {
        match reason {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "content_filter" => Self::ContentFilter,
            "tool_calls" | "function_call" => Self::ToolCalls,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Token counts. `input_tokens` includes cached and cache-write tokens (as OpenAI reports
/// `prompt_tokens`); `output_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Where a cost figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// tokens × prices from models.yaml / LiteLLM's map.
    Computed,
    /// Reported by the upstream (LiteLLM proxy header, OpenRouter `usage.cost`).
    Upstream,
    /// No prices known: the cost is unknown, not zero.
    Unknown,
}

/// Cost of a call in USD; `usd: None` means unknown (never reported as 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub usd: Option<f64>,
    pub source: CostSource,
}

impl Cost {
    pub const UNKNOWN: Self = Self {
        usd: None,
        source: CostSource::Unknown,
    };
}

/// Forwarded while a call streams, for progress notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A model (re)starts answering: the first attempt, a retry or a fallback.
    Started { model: String, attempt: u32 },
    /// A piece of answer text.
    Delta(String),
    /// Final usage of the successful attempt.
    Usage(Usage),
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Ok,
    Failed { kind: String, message: String },
}

/// One HTTP attempt (retries and fallbacks each add one), for the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub model: String,
    pub provider: String,
    pub outcome: AttemptOutcome,
    /// Usage when the upstream reported any (a failed stream may still have cost tokens).
    pub usage: Option<Usage>,
    pub cost: Cost,
    /// What prompt caching saved on this attempt (see [`super::cost::cache_savings`]).
    pub cache_saved_usd: Option<f64>,
    #[serde(with = "duration_ms")]
    pub latency: Duration,
}

/// The result of [`super::Providers::complete`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub cost: Cost,
    /// Canonical name of the model that answered (after fallbacks).
    pub model: String,
    pub provider: String,
    /// The id sent upstream.
    pub upstream_model: String,
    /// Latency of the successful attempt.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    pub request_id: Option<String>,
    /// Every attempt, failed ones included, in order; the last one produced this result.
    pub attempts: Vec<Attempt>,
}

impl Completion {
    /// Total cost of all attempts; `None` if any attempt with usage had an unknown cost.
    pub fn total_cost_usd(&self) -> Option<f64> {
        let mut total = 0.0;
        for attempt in &self.attempts {
            match (attempt.usage, attempt.cost.usd) {
                (_, Some(usd)) => total += usd,
                (Some(_), None) => return None,
                (None, None) => {}
            }
        }
        Some(total)
    }
}

mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
