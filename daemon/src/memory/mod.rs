//! Conversation memory: threads that any session and any tool can continue
//! by id (`continuation_id`), across tools, clients and daemon restarts.
//!
//! Owns threads, turns, workflow state, expiry, listing, history building and
//! the text renderings of threads. Reading referenced files, calling models
//! and the MCP surface (the `threads` tool, `zen://threads` resources) are
//! left to `tools` and `mcp`; storage mechanics are [`crate::store`]'s.
//!
//! # API
//! - [`Threads`] (`Threads::new(Store, MemoryConfig, Clock)`, built beside
//!   the ledger); every write is durable when it returns:
//!   - `create(NewThread) -> Result<ThreadId>`
//!   - `append(&ThreadId, NewTurn) -> Result<AppendOutcome>` (errors
//!     [`ThreadError::NotFound`] / [`ThreadError::Expired`] naming the TTL,
//!     [`ThreadError::TooManyTurns`] naming the maximum)
//!   - `write_turns(ThreadTarget, Vec<NewTurn>) -> Result<(ThreadId, AppendOutcome)>`:
//!     start or continue a thread and add several turns in one transaction
//!   - `get(&ThreadId) -> Result<Thread>`, `summary(&ThreadId) -> Result<ThreadSummary>`
//!   - `list(&ThreadFilter) -> Result<Vec<ThreadSummary>>` (recent first)
//!   - `workflow_state(&ThreadId, tool) -> Result<Option<Value>>`,
//!     `set_workflow_state(&ThreadId, tool, Value)`, `clear_workflow_state`
//!   - `sweep_expired() -> Result<usize>`; [`spawn_sweeper`] runs it in the background.
//! - [`history::build`]`(&Thread, budget_tokens, estimate) -> History` and
//!   [`history::token_budget_for`]`(context_window) -> (input, answer)`: pure.
//! - [`render`]: compact text for a listing and for one thread; the types are
//!   `Serialize` for JSON.
//! - [`MemoryConfig`]: the `threads:` section of `limits.yaml` (TTL, max
//!   turns, sweep interval); `apply_zen_env` honours Zen's variables.
//!
//! A thread is identified by a UUID v4 ([`ThreadId`]). Appends to one thread
//! are serialized (each is one operation of the store's single writer), so
//! two sessions appending at once both land, each in the order it appended.

mod cache;
pub mod history;
pub mod render;
mod sweeper;
mod thread;
mod threads;

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use sweeper::spawn_sweeper;
pub use thread::{
    AppendOutcome, NewThread, NewTurn, Role, Thread, ThreadFilter, ThreadId, ThreadSummary, Turn,
};
pub use threads::{StagedTurns, ThreadTarget, Threads};

use crate::store::StoreError;
use crate::time::Timestamp;
use crate::util::human_duration;

/// The `threads:` section of `limits.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// A thread expires this long after its last turn (Zen kept 3 hours in RAM).
    pub ttl_hours: u64,
    /// Turns a thread may hold; the append past it is refused.
    pub max_turns: u32,
    /// How often the background sweeper removes expired threads.
    pub sweep_interval_secs: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            ttl_hours: 72,
            max_turns: 50,
            sweep_interval_secs: 600,
        }
    }
}

impl MemoryConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_hours.saturating_mul(3600))
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs.max(1))
    }

    /// Applies Zen's variables, `CONVERSATION_TIMEOUT_HOURS` and
    /// `MAX_CONVERSATION_TURNS`, so people moving from Zen keep their setup;
    /// `var` reads zend's `Env` (environment and `.env`), a map in tests. Unparsable or zero
    /// values are ignored with a warning.
    pub fn apply_zen_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        let read = |name: &str| -> Option<u64> {
            let text = var(name)?;
            match text.trim().parse::<u64>() {
                Ok(value) if value > 0 => Some(value),
                _ => {
                    tracing::warn!(name, value = %text, "ignoring: expected a whole number above 0");
                    None
                }
            }
        };
        if let Some(hours) = read("CONVERSATION_TIMEOUT_HOURS") {
            self.ttl_hours = hours;
        }
        if let Some(turns) = read("MAX_CONVERSATION_TURNS") {
            self.max_turns = u32::try_from(turns).unwrap_or(u32::MAX);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error(
        "no conversation thread {id}: it never existed or expired (threads are kept for {} after their last turn); start a new conversation without continuation_id",
        human_duration(*ttl)
    )]
    NotFound { id: ThreadId, ttl: Duration },
    #[error(
        "conversation thread {id} expired at {}: threads are kept for {} after their last turn (threads.ttl_hours in limits.yaml); start a new conversation without continuation_id",
        expired_at.display_minutes(),
        human_duration(*ttl)
    )]
    Expired {
        id: ThreadId,
        ttl: Duration,
        expired_at: Timestamp,
    },
    #[error(
        "conversation thread {id} has reached its maximum of {max} turns (threads.max_turns in limits.yaml); start a new conversation without continuation_id, summarizing what matters"
    )]
    TooManyTurns { id: ThreadId, max: u32 },
    #[error(
        "continuation_id {0:?} is not a thread id; pass the continuation_id a previous answer returned"
    )]
    InvalidId(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
