//! The inputs tools share, named as in Zen so assistants' habits carry over, and
//! the JSON Schema fragments that describe them (kept short: every byte of
//! `tools/list` costs each session context).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::ToolError;
use super::files::{FilePolicy, ReadMeter};

/// Zen's limit: a prompt longer than this must come as a file (`prompt.txt`).
pub const MAX_PROMPT_CHARS: usize = 60_000;

/// Fields most model-calling tools take.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CommonArgs {
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub continuation_id: Option<String>,
    pub absolute_file_paths: Vec<String>,
    pub images: Vec<String>,
    pub temperature: Option<f32>,
    pub thinking_mode: Option<String>,
    pub working_directory_absolute_path: Option<String>,
    pub max_answer_tokens: Option<u64>,
}

/// Checks `max_answer_tokens` (the output limit asked of the provider).
pub fn max_answer_tokens(value: Option<u64>) -> Result<Option<u64>, ToolError> {
    match value {
        Some(0) => Err(ToolError::InvalidArguments(
            "`max_answer_tokens` must be at least 1 (leave it out for the model's own limit)"
                .into(),
        )),
        other => Ok(other),
    }
}

/// Deserializes a tool's arguments, naming the offending field on error.
pub fn parse<T: DeserializeOwned>(arguments: &Map<String, Value>) -> Result<T, ToolError> {
    // Straight from the borrowed map: no copy of the arguments per call.
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError::InvalidArguments(inner.to_string())
        } else {
            ToolError::InvalidArguments(format!("`{path}`: {inner}"))
        }
    })
}

/// The answer Zen gives when a prompt is too long for MCP: resend it as a file.
pub fn resend_prompt_text(chars: usize) -> String {
    format!(
        "status: resend_prompt\nThe prompt is {chars} characters, over the {MAX_PROMPT_CHARS}-character limit \
         for prompts sent inline. Save the full prompt text to a file named `prompt.txt` (for example in the \
         working directory), then call this tool again with that file's absolute path in \
         `absolute_file_paths` and a short `prompt` such as \"see prompt.txt\"."
    )
}

/// Moves the content of a `prompt.txt` among `files` into the prompt (checked
/// and capped as every file a tool reads). Returns the prompt to use and the
/// remaining files.
pub fn take_prompt_file(
    policy: &FilePolicy,
    meter: &ReadMeter,
    prompt: &str,
    files: &[String],
) -> Result<(String, Vec<String>), ToolError> {
    let mut rest = Vec::with_capacity(files.len());
    let mut from_file = None;
    for file in files {
        let is_prompt_file = std::path::Path::new(file)
            .file_name()
            .is_some_and(|n| n == "prompt.txt");
        if is_prompt_file && from_file.is_none() {
            let text = super::files::off_worker(|| policy.read_prompt_file(file, meter))
                .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
            from_file = Some(text);
        } else {
            rest.push(file.clone());
        }
    }
    let prompt = match from_file {
        Some(text) if prompt.trim().is_empty() || prompt.len() < 200 => text,
        Some(text) => format!("{text}\n\n{prompt}"),
        None => prompt.to_owned(),
    };
    Ok((prompt, rest))
}

/// Schema fragments for the common fields.
pub mod schema {
    use super::*;

    pub fn prompt(description: &str) -> (&'static str, Value) {
        (
            "prompt",
            json!({"type": "string", "description": description}),
        )
    }
    pub fn model() -> (&'static str, Value) {
        (
            "model",
            json!({"type": "string", "description": "Name/alias or auto (see listmodels)."}),
        )
    }
    pub fn continuation_id() -> (&'static str, Value) {
        (
            "continuation_id",
            json!({"type": "string", "description": "Continue a conversation."}),
        )
    }
    pub fn files() -> (&'static str, Value) {
        (
            "absolute_file_paths",
            json!({"type": "array", "items": {"type": "string"}, "description": "Absolute file/dir paths."}),
        )
    }
    pub fn images() -> (&'static str, Value) {
        (
            "images",
            json!({"type": "array", "items": {"type": "string"}, "description": "Image paths or data URLs."}),
        )
    }
    pub fn temperature() -> (&'static str, Value) {
        (
            "temperature",
            json!({"type": "number", "minimum": 0, "maximum": 2}),
        )
    }
    pub fn thinking_mode() -> (&'static str, Value) {
        (
            "thinking_mode",
            json!({"type": "string", "enum": ["minimal", "low", "medium", "high", "max"]}),
        )
    }
    pub fn working_directory() -> (&'static str, Value) {
        (
            "working_directory_absolute_path",
            json!({"type": "string", "description": "Absolute path of the project directory."}),
        )
    }

    pub fn max_answer_tokens() -> (&'static str, Value) {
        ("max_answer_tokens", json!({"type": "integer"}))
    }

    /// Everything a chat-like tool takes besides its prompt.
    pub fn common() -> Vec<(&'static str, Value)> {
        vec![
            model(),
            continuation_id(),
            files(),
            images(),
            temperature(),
            thinking_mode(),
            working_directory(),
            max_answer_tokens(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_name_the_field() {
        let args = json!({"prompt": "hi", "absolute_file_paths": "not-a-list"});
        let err = parse::<CommonArgs>(args.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute_file_paths"), "{err}");
    }

    #[test]
    fn prompt_txt_becomes_the_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prompt.txt");
        std::fs::write(&file, "the long question").unwrap();
        let other = dir.path().join("a.rs").to_string_lossy().into_owned();
        let (prompt, rest) = take_prompt_file(
            &FilePolicy::shipped(),
            &ReadMeter::default(),
            "see prompt.txt",
            &[file.to_string_lossy().into_owned(), other.clone()],
        )
        .unwrap();
        assert_eq!(prompt, "the long question");
        assert_eq!(rest, vec![other]);
    }
}
