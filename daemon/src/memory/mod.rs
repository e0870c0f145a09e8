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
//! - [`crate::config::MemoryConfig`] (the `threads:` section of `limits.yaml`:
//!   TTL, max turns, sweep interval) is what [`Threads`] is given.
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

pub use sweeper::spawn_sweeper;
pub use thread::{
    AppendOutcome, NewThread, NewTurn, Role, Thread, ThreadFilter, ThreadId, ThreadSummary, Turn,
};
pub use threads::{StagedTurns, ThreadTarget, Threads};

use crate::store::StoreError;
use crate::time::Timestamp;
use crate::util::human_duration;

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
