//! `refactor`: finds refactoring opportunities step by step (code smells,
//! decomposition, modernisation, organisation), on its own confidence scale.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Kind;
use super::step::{Fields, Step, one_of};
use crate::tools::{ToolError, args};

pub struct Refactor;

/// Zen's refactor scale; `complete` skips the expert.
const CONFIDENCE: &[&str] = &["exploring", "incomplete", "partial", "complete"];

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RefactorType {
    Codesmells,
    Decompose,
    Modernize,
    Organization,
}

#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "parsed to check the values; the run keeps the raw fields"
)]
struct Own {
    refactor_type: Option<RefactorType>,
}

#[async_trait::async_trait]
impl Kind for Refactor {
    fn name(&self) -> &'static str {
        "refactor"
    }

    fn fields(&self) -> Fields {
        Fields {
            issues: true,
            hypothesis: false,
            confidence: CONFIDENCE,
        }
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![(
            "refactor_type",
            one_of(&["codesmells", "decompose", "modernize", "organization"]),
        )]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        args::parse::<Own>(own).map(drop)
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Read the code and list refactoring opportunities of the requested type (long functions, \
             duplication, tangled modules, dated idioms) in issues_found with severity."
        } else {
            "Check each opportunity for risk and payoff: callers, tests, behaviour to preserve; order \
             them so each step leaves the code working."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the refactoring plan in order, each step small and behaviour-preserving."
    }
}
