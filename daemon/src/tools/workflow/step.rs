//! One step of the step protocol: the fields every investigation tool takes
//! (named as in Zen, so assistants' habits carry over), their checks, and the
//! one schema builder all the tools share (kept terse: every byte of
//! `tools/list` costs each session context).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::tools::files::FileError;
use crate::tools::{ToolError, args, object_schema};

/// Zen's confidence scale.
pub const CONFIDENCE: &[&str] = &[
    "exploring",
    "low",
    "medium",
    "high",
    "very_high",
    "almost_certain",
    "certain",
];

/// Which of the optional common fields a tool takes.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub issues: bool,
    pub hypothesis: bool,
    /// The confidence scale, lowest first; its last value skips the expert. Empty: no `confidence`.
    pub confidence: &'static [&'static str],
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            issues: false,
            hypothesis: false,
            confidence: CONFIDENCE,
        }
    }
}

/// How bad an issue is, as Zen grades it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

/// One issue the assistant found; any other keys it sent (location, type) are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub severity: Severity,
    pub description: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The common fields of one step.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub step: String,
    pub step_number: u32,
    pub total_steps: u32,
    pub next_step_required: bool,
    pub findings: String,
    #[serde(default)]
    pub files_checked: Vec<String>,
    #[serde(default)]
    pub relevant_files: Vec<String>,
    #[serde(default)]
    pub relevant_context: Vec<String>,
    #[serde(default)]
    pub issues_found: Vec<Issue>,
    #[serde(default)]
    pub confidence: Option<String>,
    #[serde(default)]
    pub hypothesis: Option<String>,
    #[serde(default)]
    pub use_assistant_model: Option<bool>,
    #[serde(default)]
    pub continuation_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The expert's output limit (final step). Accepted but not listed in the
    /// schema: nine more entries would take the step tools over their share of
    /// `tools/list`; the server instructions name it.
    #[serde(default)]
    pub max_answer_tokens: Option<u64>,
}

impl Step {
    /// Parses and checks a step's common fields; errors name the field and say what to send.
    pub fn parse(arguments: &Map<String, Value>, fields: Fields) -> Result<Self, ToolError> {
        let mut step: Step = args::parse(arguments)?;
        let invalid = |message: String| Err(ToolError::InvalidArguments(message));
        if step.step.trim().is_empty() {
            return invalid("`step` is empty: say what you are investigating in this step".into());
        }
        args::max_answer_tokens(step.max_answer_tokens)?;
        if step.step_number == 0 || step.total_steps == 0 {
            return invalid("`step_number` and `total_steps` start at 1".into());
        }
        if step.step_number > step.total_steps {
            return invalid(format!(
                "`step_number` ({}) is above `total_steps` ({}); raise total_steps if you need more steps",
                step.step_number, step.total_steps
            ));
        }
        if let Some(confidence) = &step.confidence {
            let wanted = confidence.trim().to_ascii_lowercase();
            if !fields.confidence.contains(&wanted.as_str()) {
                return invalid(format!(
                    "`confidence`: '{confidence}' is not one of {}",
                    fields.confidence.join(", ")
                ));
            }
            step.confidence = Some(wanted);
        }
        for (field, paths) in [
            ("files_checked", &step.files_checked),
            ("relevant_files", &step.relevant_files),
        ] {
            if let Some(path) = paths
                .iter()
                .find(|p| !std::path::Path::new(p.trim()).is_absolute())
            {
                return invalid(format!(
                    "`{field}`: {}",
                    FileError::NotAbsolute(path.trim().to_owned())
                ));
            }
        }
        step.continuation_id = step
            .continuation_id
            .take()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        step.model = step
            .model
            .take()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        Ok(step)
    }

    /// Whether this is the last step of the run.
    pub fn is_final(&self) -> bool {
        !self.next_step_required
    }
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn described(mut schema: Value, description: &str) -> Value {
    if let Some(object) = schema.as_object_mut() {
        object.insert("description".into(), Value::from(description));
    }
    schema
}

/// An enum of strings.
pub fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// The input schema of a step-protocol tool: the common fields, then the tool's own.
/// Field names carry the meaning (they are Zen's); only the non-obvious ones are described.
/// `files_checked` and `relevant_context` are accepted but not advertised, to keep
/// `tools/list` small: Zen's users send them by habit, and the first step's answer
/// asks for them.
pub fn schema(fields: Fields, own: Vec<(&'static str, Value)>) -> Map<String, Value> {
    let text = || json!({"type": "string"});
    let number = || json!({"type": "integer"});
    let mut properties = vec![
        ("step", text()),
        ("step_number", number()),
        ("total_steps", number()),
        ("next_step_required", json!({"type": "boolean"})),
        ("findings", text()),
        ("relevant_files", described(strings(), "Absolute paths")),
    ];
    if fields.issues {
        properties.push((
            "issues_found",
            json!({"type": "array", "items": {"type": "object"},
                   "description": "[{severity, description}]"}),
        ));
    }
    if !fields.confidence.is_empty() {
        properties.push(("confidence", one_of(fields.confidence)));
    }
    if fields.hypothesis {
        properties.push(("hypothesis", text()));
    }
    properties.extend([
        ("use_assistant_model", json!({"type": "boolean"})),
        ("continuation_id", text()),
        ("model", text()),
    ]);
    properties.extend(own);
    object_schema(
        &properties,
        &[
            "step",
            "step_number",
            "total_steps",
            "next_step_required",
            "findings",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(extra: Value) -> Result<Step, ToolError> {
        let mut args = json!({
            "step": "look", "step_number": 1, "total_steps": 2,
            "next_step_required": true, "findings": "none yet"
        });
        if let (Some(base), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        Step::parse(args.as_object().unwrap(), Fields::default())
    }

    fn error(extra: Value) -> String {
        step(extra).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_step_parses_with_defaults() {
        let parsed = step(json!({"confidence": "HIGH", "continuation_id": " "})).unwrap();
        assert_eq!(parsed.confidence.as_deref(), Some("high"));
        assert_eq!(parsed.continuation_id, None);
        assert!(!parsed.is_final());
    }

    #[test]
    fn bad_steps_name_the_field() {
        let missing = Step::parse(
            json!({"step": "x", "step_number": 1, "total_steps": 1, "next_step_required": false})
                .as_object()
                .unwrap(),
            Fields::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("findings"), "{missing}");
        let above = error(json!({"step_number": 3}));
        assert!(
            above.contains("`step_number` (3) is above `total_steps` (2)"),
            "{above}"
        );
        let relative = error(json!({"relevant_files": ["src/a.rs"]}));
        assert!(
            relative.contains("`relevant_files`") && relative.contains("not an absolute path"),
            "{relative}"
        );
        let confidence = error(json!({"confidence": "sure"}));
        assert!(
            confidence.contains("`confidence`") && confidence.contains("certain"),
            "{confidence}"
        );
        let severity = error(json!({"issues_found": [{"severity": "urgent", "description": "x"}]}));
        assert!(severity.contains("issues_found"), "{severity}");
        assert!(error(json!({"step": "  "})).contains("`step` is empty"));
    }

    #[test]
    fn the_schema_requires_the_core_fields_and_adds_the_tools_own() {
        let schema = schema(
            Fields {
                issues: true,
                ..Fields::default()
            },
            vec![("review_type", one_of(&["full", "quick"]))],
        );
        assert_eq!(schema["required"].as_array().map(Vec::len), Some(5));
        let properties = schema["properties"].as_object().unwrap();
        assert!(properties.contains_key("issues_found"));
        assert!(!properties.contains_key("hypothesis"));
        assert!(properties.contains_key("review_type"));
    }
}
