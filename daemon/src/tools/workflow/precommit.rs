//! `precommit`: validates pending changes before a commit. The assistant
//! investigates step by step; zend reads the repository itself (staged,
//! unstaged, or against a ref — see `git`) and sends the budgeted diff to the
//! expert with the findings.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::budget::Budget;
use super::git::{Repo, Selection};
use super::step::{Fields, Step, one_of};
use super::{Kind, SeverityFilter, ValidationMode};
use crate::tools::{CallContext, ToolError, args};

pub struct Precommit;

#[derive(Deserialize)]
struct Own {
    path: Option<String>,
    compare_to: Option<String>,
    include_staged: Option<bool>,
    include_unstaged: Option<bool>,
    #[expect(
        dead_code,
        reason = "parsed to check the value; the run keeps the raw field"
    )]
    severity_filter: Option<SeverityFilter>,
    #[expect(
        dead_code,
        reason = "parsed to check the value; the run keeps the raw field"
    )]
    precommit_type: Option<ValidationMode>,
}

impl Own {
    fn selection(&self) -> Selection {
        Selection {
            compare_to: self
                .compare_to
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            staged: self.include_staged.unwrap_or(true),
            unstaged: self.include_unstaged.unwrap_or(true),
        }
    }
}

fn git_error(error: super::git::GitError) -> ToolError {
    ToolError::InvalidArguments(error.to_string())
}

async fn open(
    own: &Map<String, Value>,
    context: &CallContext,
) -> Result<(Repo, Selection), ToolError> {
    let own: Own = args::parse(own)?;
    let path = own.path.as_deref().unwrap_or_default();
    // The repository path passes the same check as every file a tool reads.
    context
        .settings
        .files
        .check_refused(path)
        .map_err(|e| ToolError::InvalidArguments(format!("`path`: {e}")))?;
    let repo = Repo::open(path).await.map_err(git_error)?;
    Ok((repo, own.selection()))
}

#[async_trait::async_trait]
impl Kind for Precommit {
    fn name(&self) -> &'static str {
        "precommit"
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
                "path",
                json!({"type": "string", "description": "Repository (absolute path)"}),
            ),
            (
                "compare_to",
                json!({"type": "string", "description": "Git ref to diff against"}),
            ),
            ("include_staged", json!({"type": "boolean"})),
            ("include_unstaged", json!({"type": "boolean"})),
            ("severity_filter", super::severity_filter_schema()),
            ("precommit_type", one_of(&["external", "internal"])),
        ]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        let parsed: Own = args::parse(own)?;
        let Some(path) = parsed.path.as_deref().map(str::trim) else {
            return Err(ToolError::InvalidArguments(
                "`path` is required: the absolute path of the git repository to check".into(),
            ));
        };
        if !std::path::Path::new(path).is_absolute() {
            return Err(ToolError::InvalidArguments(format!(
                "`path`: {}",
                crate::tools::files::FileError::NotAbsolute(path.to_owned())
            )));
        }
        let selection = parsed.selection();
        if selection.compare_to.is_none() && !selection.staged && !selection.unstaged {
            return Err(ToolError::InvalidArguments(
                "nothing to check: set `include_staged` or `include_unstaged` to true, or pass `compare_to`"
                    .into(),
            ));
        }
        Ok(())
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Look at the changes (git status, git diff) and read the changed code in context: does \
             it do what was intended, and what could it break?"
        } else {
            "Check the changes for bugs, security problems, missing tests and docs, and leftovers \
             (debug code, secrets, TODOs); add each to issues_found with severity."
        }
    }

    fn final_action(&self) -> &'static str {
        "tell the user whether the changes are ready to commit, with blocking issues first and their \
         fixes."
    }

    fn skip_mode(&self, own: &Map<String, Value>) -> Option<String> {
        super::internal_mode(own, "precommit_type")
    }

    async fn first_step_note(
        &self,
        own: &Map<String, Value>,
        context: &CallContext,
    ) -> Result<Option<String>, ToolError> {
        let (repo, selection) = open(own, context).await?;
        let changes = repo.changes(&selection).await.map_err(git_error)?;
        let mut note = format!("git: {}", changes.summary());
        if changes.is_empty() {
            note.push_str(" — nothing to commit; check `path` and the include_* flags");
        }
        Ok(Some(note))
    }

    async fn expert_context(
        &self,
        own: &Map<String, Value>,
        budget: &Budget,
        context: &CallContext,
    ) -> Result<(Option<String>, Vec<String>), ToolError> {
        let (repo, selection) = open(own, context).await?;
        let changes = repo.changes(&selection).await.map_err(git_error)?;
        let (text, notes) = changes.render(budget.diff_chars());
        Ok((Some(text), notes))
    }
}
