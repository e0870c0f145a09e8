//! The execution engine: what every model-calling tool shares.
//!
//! A tool describes one model turn ([`ModelTurn`]); [`run_model_turn`] does the
//! rest in one place: pick and check the model, load the thread, budget history
//! and files against the model's context window, check the spend budget, call
//! `providers` (forwarding progress), write the ledger record and the turns
//! durably, and return a [`TurnResult`] that [`render`] turns into the text the
//! assistant reads. Tools that make no model call use the thread helpers here
//! ([`open_thread`], [`record_turn`], [`workflow_state`]) so continuation works
//! the same everywhere.

use serde_json::Value;

use super::config::ToolConfig;
use super::{CallContext, ToolError};

/// One model turn, as a tool asks for it.
#[derive(Debug, Clone, Default)]
pub struct ModelTurn {
    /// The tool's name (recorded on the thread and in the ledger).
    pub tool: String,
    /// The user's prompt (already taken from prompt.txt when one was sent).
    pub prompt: String,
    /// Text the tool adds after the prompt: workflow findings, a diff, ...
    pub extra_context: Option<String>,
    /// Replaces the tool config's system prompt when set.
    pub system_prompt: Option<String>,
    /// Requested model; `None` or `auto` = the tool's default.
    pub model: Option<String>,
    pub continuation_id: Option<String>,
    /// Files and directories as the client gave them (absolute).
    pub files: Vec<String>,
    pub images: Vec<String>,
    pub temperature: Option<f32>,
    pub thinking_mode: Option<String>,
}

/// What one model turn produced.
#[derive(Debug, Clone, Default)]
pub struct TurnResult {
    pub answer: String,
    pub continuation_id: String,
    pub remaining_turns: u32,
    /// `provider/model` that answered.
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// USD; `None` when the price is unknown.
    pub cost: Option<f64>,
    pub latency_ms: u64,
    /// One-line notes for the assistant: budget warnings, files left out, fallbacks taken.
    pub notes: Vec<String>,
}

/// Runs one model turn for `tool` (see the module docs for the steps).
pub async fn run_model_turn(
    context: &CallContext,
    config: &ToolConfig,
    turn: ModelTurn,
) -> Result<TurnResult, ToolError> {
    let _ = (context, config, turn);
    Err(ToolError::Failed(
        "model calls are not available in this build yet".into(),
    ))
}

/// The text the assistant reads: the answer, then one footer line with the
/// model, tokens and cost, then the continuation offer.
pub fn render(result: &TurnResult) -> String {
    let cost = match result.cost {
        Some(cost) => format!("${cost:.4}"),
        None => "cost unknown".to_owned(),
    };
    let mut text = result.answer.trim_end().to_owned();
    text.push_str("\n\n---\n");
    text.push_str(&format!(
        "model: {} · {} in / {} out tokens · {cost} · {:.1} s\n",
        result.model,
        result.input_tokens,
        result.output_tokens,
        result.latency_ms as f64 / 1000.0
    ));
    for note in &result.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text.push_str(&format!(
        "continuation_id: {} ({} turns left) — pass it to any zen tool to continue this conversation.",
        result.continuation_id, result.remaining_turns
    ));
    text
}

/// Opens the thread to continue (checking the id) or starts a new one; returns its id.
pub async fn open_thread(
    context: &CallContext,
    tool: &str,
    continuation_id: Option<&str>,
    first_prompt: &str,
) -> Result<String, ToolError> {
    let _ = (context, tool, continuation_id, first_prompt);
    Err(ToolError::Failed(
        "conversation memory is not available in this build yet".into(),
    ))
}

/// Records one turn on a thread, durably, and returns the turns left.
pub async fn record_turn(
    context: &CallContext,
    thread: &str,
    tool: &str,
    role_is_user: bool,
    text: &str,
    files: &[String],
) -> Result<u32, ToolError> {
    let _ = (context, thread, tool, role_is_user, text, files);
    Err(ToolError::Failed(
        "conversation memory is not available in this build yet".into(),
    ))
}

/// A multi-step tool's state on a thread (`None` before its first step).
pub async fn workflow_state(
    context: &CallContext,
    thread: &str,
    tool: &str,
) -> Result<Option<Value>, ToolError> {
    let _ = (context, thread, tool);
    Err(ToolError::Failed(
        "conversation memory is not available in this build yet".into(),
    ))
}

/// Stores a multi-step tool's state on a thread, durably.
pub async fn set_workflow_state(
    context: &CallContext,
    thread: &str,
    tool: &str,
    state: Value,
) -> Result<(), ToolError> {
    let _ = (context, thread, tool, state);
    Err(ToolError::Failed(
        "conversation memory is not available in this build yet".into(),
    ))
}
