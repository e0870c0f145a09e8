//! `tracer`: traces a method's execution flow (precision) or a component's
//! dependencies step by step; the expert reviews the trace at the end.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Kind;
use super::step::{Step, one_of};
use crate::tools::{ToolError, args};

pub struct Tracer;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TraceMode {
    Precision,
    Dependencies,
    Ask,
}

#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "parsed to check the values; the run keeps the raw fields"
)]
struct Own {
    trace_mode: Option<TraceMode>,
    target_description: Option<String>,
}

#[async_trait::async_trait]
impl Kind for Tracer {
    fn name(&self) -> &'static str {
        "tracer"
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("trace_mode", one_of(&["precision", "dependencies", "ask"])),
            ("target_description", json!({"type": "string"})),
        ]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        args::parse::<Own>(own).map(drop)
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Find the target's definition and entry points; for precision follow its calls in order \
             (with conditions and side effects), for dependencies map what it uses and what uses it."
        } else {
            "Extend the trace one level further, noting file:line for each hop, branches taken and \
             state changed."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the trace as an ordered call flow or dependency map with file:line references."
    }
}
