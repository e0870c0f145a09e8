//! `docgen`: documents code file by file, counting files as it goes (Zen's
//! counters); the run cannot finish before every file is documented.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Kind;
use super::step::{Fields, Step};
use crate::tools::{ToolError, args};

pub struct DocGen;

#[derive(Deserialize)]
struct Own {
    num_files_documented: Option<u32>,
    total_files_to_document: Option<u32>,
    #[expect(
        dead_code,
        reason = "parsed to check the type; the run keeps the raw field"
    )]
    document_complexity: Option<bool>,
}

#[async_trait::async_trait]
impl Kind for DocGen {
    fn name(&self) -> &'static str {
        "docgen"
    }

    fn fields(&self) -> Fields {
        Fields {
            confidence: &[],
            ..Fields::default()
        }
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "num_files_documented",
                json!({"type": "integer", "minimum": 0}),
            ),
            (
                "total_files_to_document",
                json!({"type": "integer", "minimum": 0}),
            ),
        ]
    }

    fn check(&self, own: &Map<String, Value>, step: &Step) -> Result<(), ToolError> {
        let own: Own = args::parse(own)?;
        if let (Some(done), Some(total)) = (own.num_files_documented, own.total_files_to_document) {
            if done > total {
                return Err(ToolError::InvalidArguments(format!(
                    "`num_files_documented` ({done}) is above `total_files_to_document` ({total})"
                )));
            }
            if step.is_final() && done < total {
                return Err(ToolError::InvalidArguments(format!(
                    "`next_step_required` is false but only {done} of {total} files are documented: \
                     document the remaining files, then finish"
                )));
            }
        }
        Ok(())
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "List every file to document and set total_files_to_document; then document them one by \
             one (purpose, parameters, returns, errors, complexity), updating num_files_documented."
        } else {
            "Document the next file completely, fix comments that disagree with the code, and bump \
             num_files_documented."
        }
    }

    fn final_action(&self) -> &'static str {
        "tell the user which files were documented and any bugs noticed along the way."
    }
}
