//! One ledger record per provider call.

use serde::{Deserialize, Serialize};

use crate::memory::ThreadId;
use crate::time::Timestamp;

/// A provider call, as the providers layer reports it. Failed calls that cost
/// tokens are recorded too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// When the call started.
    pub time: Timestamp,
    /// The resolved model name (what budgets' `per_model` keys match).
    pub model: String,
    pub provider: String,
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The MCP client's name (`claude-code`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The session's working directory (the project), when the client has one; records
    /// written before zend kept it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache (part of `input_tokens`).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache (part of `input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// USD prompt caching saved on this call (what its input would have cost uncached, less
    /// what it cost; negative when cache writes outweighed the reads); 0 when unknown.
    #[serde(default, skip_serializing_if = "is_zero_usd")]
    pub cache_saved_usd: f64,
    /// `None` when the price is unknown; never 0 for unknown.
    pub cost_usd: Option<f64>,
    pub latency_ms: u64,
    pub outcome: Outcome,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_usd(usd: &f64) -> bool {
    *usd == 0.0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The call failed; `kind` is the providers layer's error kind
    /// (`rate_limited`, `timeout`, ...). Never holds secrets.
    Error {
        kind: String,
    },
    Cancelled,
}

impl Outcome {
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error { .. })
    }
}
