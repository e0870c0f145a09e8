//! `analyze`: a step-by-step analysis of code or a codebase (architecture,
//! performance, security, quality), with the expert's assessment at the end.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Kind;
use super::step::{Fields, Step, one_of};
use crate::tools::{ToolError, args};

pub struct Analyze;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum AnalysisType {
    Architecture,
    Performance,
    Security,
    Quality,
    General,
}

#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "parsed to check the values; the run keeps the raw fields"
)]
struct Own {
    analysis_type: Option<AnalysisType>,
}

#[async_trait::async_trait]
impl Kind for Analyze {
    fn name(&self) -> &'static str {
        "analyze"
    }

    fn fields(&self) -> Fields {
        Fields {
            issues: true,
            ..Fields::default()
        }
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![(
            "analysis_type",
            one_of(&[
                "architecture",
                "performance",
                "security",
                "quality",
                "general",
            ]),
        )]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        args::parse::<Own>(own).map(drop)
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Map the code: entry points, modules, data flow and dependencies; note strengths, risks \
             and hotspots."
        } else {
            "Go deeper where the analysis type points (scalability, coupling, performance, \
             maintainability); back each finding with file:line."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the analysis: the main findings, their impact and prioritised recommendations."
    }
}
