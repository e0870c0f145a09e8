//! MCP prompts: one per enabled tool plus `continue`, which clients show as
//! slash commands (e.g. `/zen:chat`). Each expands to one user message telling
//! the assistant which zen tool to use for the user's request.

use serde_json::{Map, Value};

use super::{Registry, ToolError};

/// A prompt as clients list it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSpec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// (name, description, required)
    pub arguments: Vec<(&'static str, &'static str, bool)>,
}

const REQUEST: (&str, &str, bool) = ("request", "What you want done.", false);
const MODEL: (&str, &str, bool) = ("model", "Model or alias (optional).", false);
const CONTINUATION: (&str, &str, bool) = (
    "continuation_id",
    "The conversation to continue (optional).",
    false,
);

/// The prompts for the enabled tools, in the registry's order, then `continue`.
pub fn list(registry: &Registry) -> Vec<PromptSpec> {
    let mut prompts: Vec<PromptSpec> = registry
        .iter()
        .map(|tool| {
            let spec = tool.spec();
            PromptSpec {
                name: spec.name.clone(),
                title: spec.title.clone(),
                description: format!("Use zen's {} tool.", spec.name),
                arguments: vec![REQUEST, MODEL],
            }
        })
        .collect();
    prompts.push(PromptSpec {
        name: "continue".into(),
        title: "Continue".into(),
        description: "Continue the last zen conversation with the fitting tool.".into(),
        arguments: vec![REQUEST, CONTINUATION],
    });
    prompts
}

/// The user message a prompt expands to.
pub fn render(
    registry: &Registry,
    name: &str,
    arguments: &Map<String, Value>,
) -> Result<String, ToolError> {
    let arg = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let request = arg("request").unwrap_or("(ask me what I want first)");
    if name == "continue" {
        let which = match arg("continuation_id") {
            Some(id) => format!("the zen conversation with continuation_id {id}"),
            None => {
                "the most recent zen conversation (its continuation_id is in the last zen answer; \
                     if you lost it, call zen's `threads` tool to find it)"
                    .to_owned()
            }
        };
        return Ok(format!(
            "Continue {which}, using the zen tool that fits best, passing its continuation_id: {request}"
        ));
    }
    if registry.get(name).is_none() {
        let mut names: Vec<&str> = registry.names();
        names.push("continue");
        return Err(ToolError::InvalidArguments(format!(
            "unknown prompt '{name}'; available prompts: {}",
            names.join(", ")
        )));
    }
    let model = arg("model")
        .map(|m| format!(" with model {m}"))
        .unwrap_or_default();
    Ok(format!(
        "Use zen's `{name}` tool{model} for this: {request}"
    ))
}
