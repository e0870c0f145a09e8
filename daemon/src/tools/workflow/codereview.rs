//! `codereview`: a step-by-step code review — quality, security, performance,
//! architecture — ending with the expert's review of the assistant's findings.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::step::{Fields, Step, one_of};
use super::{Kind, ValidationMode};
use crate::tools::{ToolError, args};

pub struct CodeReview;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReviewType {
    Full,
    Security,
    Performance,
    Quick,
}

#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "parsed to check the values; the run keeps the raw fields"
)]
struct Own {
    review_type: Option<ReviewType>,
    focus_on: Option<String>,
    standards: Option<String>,
    severity_filter: Option<super::SeverityFilter>,
    review_validation_type: Option<ValidationMode>,
}

#[async_trait::async_trait]
impl Kind for CodeReview {
    fn name(&self) -> &'static str {
        "codereview"
    }

    fn fields(&self) -> Fields {
        Fields {
            issues: true,
            ..Fields::default()
        }
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "review_type",
                one_of(&["full", "security", "performance", "quick"]),
            ),
            ("focus_on", json!({"type": "string"})),
            ("standards", json!({"type": "string"})),
            ("severity_filter", super::severity_filter_schema()),
            ("review_validation_type", one_of(&["external", "internal"])),
        ]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        args::parse::<Own>(own).map(drop)
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Read the code under review: map its structure, purpose and dependencies, then look for \
             bugs, security holes, performance problems and design flaws; add each to issues_found with \
             a severity."
        } else {
            "Continue the review where it is thinnest (edge cases, error handling, concurrency, tests); \
             confirm or drop earlier issues and add file:line to each."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the review to the user: issues by severity, each with location and fix; do not change \
         code unless asked."
    }

    fn skip_mode(&self, own: &Map<String, Value>) -> Option<String> {
        super::internal_mode(own, "review_validation_type")
    }
}
