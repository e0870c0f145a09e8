//! Zen's multi-step investigation tools (codereview, precommit, debug, analyze,
//! refactor, tracer, testgen, secaudit, docgen) and `clink`.
//!
//! Every investigation tool follows one step protocol, run here by
//! [`WorkflowTool`]: the assistant investigates between calls and reports each
//! step; intermediate steps make no model call and answer with the tool's pause
//! status, what to do next and the continuation_id. The run's state lives on
//! its thread, keyed by (thread, tool) through `engine`, so runs never share
//! state, whichever session they come from. The last step sends the collected
//! findings and the relevant files to the expert model once, unless a skip
//! rule applies (see [`skip_reason`]). What differs per tool — its own fields,
//! guidance, skip modes and extra context (precommit's diff) — is a [`Kind`],
//! one module each.

mod analyze;
pub mod budget;
pub mod clink;
mod codereview;
mod debug;
mod docgen;
pub mod git;
mod precommit;
mod refactor;
pub mod run;
mod secaudit;
pub mod step;
mod testgen;
mod tracer;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::config::ToolConfig;
use super::engine::{self, ModelTurn};
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec};
use budget::Budget;
use run::Run;
use step::{Fields, Step};

/// The tools this module provides, by name; each has `config/tools/<name>.yaml`.
pub const TOOLS: &[&str] = &[
    "analyze",
    "clink",
    "codereview",
    "debug",
    "docgen",
    "precommit",
    "refactor",
    "secaudit",
    "testgen",
    "tracer",
];

/// Builds one of [`TOOLS`]; `None` for any other name. A broken user
/// `clink.yaml` is reported in `problems` and the built-in one is used.
pub fn build(
    name: &str,
    config: &ToolConfig,
    config_dir: &Path,
    problems: &mut Vec<String>,
) -> Option<Arc<dyn Tool>> {
    let kind: Box<dyn Kind> = match name {
        "clink" => return Some(Arc::new(clink::Clink::new(config, config_dir, problems))),
        "analyze" => Box::new(analyze::Analyze),
        "codereview" => Box::new(codereview::CodeReview),
        "debug" => Box::new(debug::Debug),
        "docgen" => Box::new(docgen::DocGen),
        "precommit" => Box::new(precommit::Precommit),
        "refactor" => Box::new(refactor::Refactor),
        "secaudit" => Box::new(secaudit::SecAudit),
        "testgen" => Box::new(testgen::TestGen),
        "tracer" => Box::new(tracer::Tracer),
        _ => return None,
    };
    Some(Arc::new(WorkflowTool::new(kind, config.clone())))
}

/// What one investigation tool adds to the step protocol.
#[async_trait::async_trait]
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;

    /// Which optional common fields the tool takes.
    fn fields(&self) -> Fields {
        Fields::default()
    }

    /// Schemas of the tool's own fields (keep them short).
    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// Checks the tool's own fields as accumulated over the run so far.
    fn check(&self, own: &Map<String, Value>, step: &Step) -> Result<(), ToolError> {
        let _ = (own, step);
        Ok(())
    }

    /// What the assistant should do before the next step.
    fn guidance(&self, step: &Step) -> &'static str;

    /// What the assistant should do once the run is complete.
    fn final_action(&self) -> &'static str;

    /// Why the expert is not wanted given the tool's own fields (e.g. an internal mode).
    fn skip_mode(&self, own: &Map<String, Value>) -> Option<String> {
        let _ = own;
        None
    }

    /// A line to add to the first step's answer (precommit: what changed).
    async fn first_step_note(
        &self,
        own: &Map<String, Value>,
        context: &CallContext,
    ) -> Result<Option<String>, ToolError> {
        let _ = (own, context);
        Ok(None)
    }

    /// Context for the expert beyond the findings (precommit: the diff, within
    /// `budget.diff_chars()`), and notes for the assistant about it (what was cut).
    async fn expert_context(
        &self,
        own: &Map<String, Value>,
        budget: &Budget,
        context: &CallContext,
    ) -> Result<(Option<String>, Vec<String>), ToolError> {
        let _ = (own, budget, context);
        Ok((None, Vec::new()))
    }
}

/// The step-protocol engine for one [`Kind`].
pub struct WorkflowTool {
    kind: Box<dyn Kind>,
    config: ToolConfig,
    spec: ToolSpec,
}

impl WorkflowTool {
    pub fn new(kind: Box<dyn Kind>, config: ToolConfig) -> Self {
        let spec = ToolSpec {
            name: kind.name().into(),
            title: config.title.clone(),
            description: config.description.clone(),
            input_schema: step::schema(kind.fields(), kind.own_schema()),
            read_only: true,
            open_world: true,
        };
        Self { kind, config, spec }
    }

    /// The tool's own fields present in `arguments`, checked by the tool.
    fn own_fields(&self, arguments: &Map<String, Value>) -> Map<String, Value> {
        self.kind
            .own_schema()
            .iter()
            .filter_map(|(name, _)| {
                arguments
                    .get(*name)
                    .filter(|v| !v.is_null())
                    .map(|v| ((*name).to_owned(), v.clone()))
            })
            .collect()
    }
}

/// Zen's external/internal switch (codereview, precommit): `internal` means the
/// assistant validates its own work and no expert is called.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    External,
    Internal,
}

/// Which issues the expert should report.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeverityFilter {
    Critical,
    High,
    Medium,
    Low,
    All,
}

pub fn severity_filter_schema() -> Value {
    step::one_of(&["critical", "high", "medium", "low", "all"])
}

/// The skip reason when `field` says `internal`.
pub fn internal_mode(own: &Map<String, Value>, field: &str) -> Option<String> {
    (own.get(field).and_then(Value::as_str) == Some("internal"))
        .then(|| format!("{field} is internal"))
}

/// Why the final step makes no expert call, if it does not.
pub fn skip_reason(kind: &dyn Kind, step: &Step, run: &Run) -> Option<String> {
    if step.use_assistant_model == Some(false) {
        return Some("use_assistant_model is false".into());
    }
    let certain = kind.fields().confidence.last().copied();
    if let (Some(certain), Some(confidence)) = (certain, run.confidence())
        && confidence == certain
    {
        return Some(format!("confidence is {certain}"));
    }
    kind.skip_mode(&run.own)
}

/// The text recorded on the thread for one step.
fn turn_text(tool: &str, step: &Step) -> String {
    let mut text = format!(
        "[{tool} step {} of {}] {}\nfindings: {}",
        step.step_number,
        step.total_steps,
        step.step.trim(),
        step.findings.trim()
    );
    for issue in &step.issues_found {
        text.push_str(&format!(
            "\n- [{}] {}",
            issue.severity.as_str(),
            issue.description.trim()
        ));
    }
    if let Some(hypothesis) = step.hypothesis.as_deref().filter(|h| !h.trim().is_empty()) {
        text.push_str(&format!("\nhypothesis: {}", hypothesis.trim()));
    }
    text
}

#[async_trait::async_trait]
impl Tool for WorkflowTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let name = self.kind.name();
        let step = Step::parse(&arguments, self.kind.fields())?;
        let own = self.own_fields(&arguments);

        // Step 1 is checked whole before a thread is opened, so a bad start leaves nothing behind.
        let (thread, mut run) = if step.step_number == 1 {
            (None, Run::default())
        } else {
            let Some(id) = step.continuation_id.as_deref() else {
                return Err(ToolError::InvalidArguments(format!(
                    "`continuation_id` is required from step 2 on: pass the continuation_id {name} \
                     returned at step 1 (or restart with step_number 1)"
                )));
            };
            let thread = engine::open_thread(context, name, Some(id), &step.step).await?;
            let run = load_run(context, name, &thread).await?;
            (Some(thread), run)
        };
        // Recorded on the thread, these are re-read by later turns: one check, now.
        for (field, paths) in [
            ("relevant_files", &step.relevant_files),
            ("files_checked", &step.files_checked),
        ] {
            for path in paths {
                context
                    .settings
                    .files
                    .check_refused(path)
                    .map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))?;
            }
        }
        run.push(&step, own);
        self.kind.check(&run.own, &step)?;
        let note = if step.step_number == 1 && !step.is_final() {
            self.kind.first_step_note(&run.own, context).await?
        } else {
            None
        };
        let thread = match thread {
            Some(thread) => thread,
            None => {
                engine::open_thread(context, name, step.continuation_id.as_deref(), &step.step)
                    .await?
            }
        };

        if !step.is_final() {
            engine::set_workflow_state(context, &thread, name, state_value(&run)?).await?;
            engine::record_turn(
                context,
                &thread,
                name,
                true,
                &turn_text(name, &step),
                &step.relevant_files,
            )
            .await?;
            return Ok(ToolOutput::text(pause_text(
                name,
                &step,
                &run,
                self.kind.guidance(&step),
                note,
                &thread,
            )));
        }

        run.completed = true;
        if let Some(reason) = skip_reason(self.kind.as_ref(), &step, &run) {
            engine::set_workflow_state(context, &thread, name, state_value(&run)?).await?;
            let turns_left = engine::record_turn(
                context,
                &thread,
                name,
                true,
                &turn_text(name, &step),
                &step.relevant_files,
            )
            .await?
            .remaining_turns;
            return Ok(ToolOutput::text(format!(
                "status: {name}_complete\n\
                 expert analysis skipped: {reason}.\n\
                 collected: {}\n\
                 next: {}\n\
                 continuation_id: {thread} ({turns_left} turns left)",
                run.summary(),
                self.kind.final_action()
            )));
        }

        let budget = Budget::for_call(context, &self.config, run.model.as_deref())?;
        let (tool_context, mut notes) =
            self.kind.expert_context(&run.own, &budget, context).await?;
        let mut existing = Vec::new();
        for file in run.relevant_files() {
            if Path::new(&file).exists() {
                existing.push(file);
            } else {
                notes.push(format!("{file} no longer exists; not sent to the expert"));
            }
        }
        let mut extra = run.findings_block(name, budget.findings_chars());
        if let Some(tool_context) = tool_context {
            extra.push('\n');
            extra.push_str(&tool_context);
        }
        let prompt = format!(
            "The assistant has completed a {name} investigation in {} steps; its last step: {}\n\n\
             Give your expert analysis of its findings, the files and the context below.",
            run.steps.len(),
            step.step.trim()
        );
        let (files, file_notes) = budget.fit_files(
            &context.settings.files,
            &context.reads,
            &existing,
            &[&self.config.system_prompt, &prompt, &extra],
        )?;
        notes.extend(file_notes);
        let turn = ModelTurn {
            tool: name.to_owned(),
            prompt,
            extra_context: Some(extra),
            model: run.model.clone(),
            continuation_id: Some(thread.clone()),
            files,
            max_answer_tokens: step.max_answer_tokens,
            ..ModelTurn::default()
        };
        let result = engine::run_model_turn(context, &self.config, turn).await?;
        engine::set_workflow_state(context, &thread, name, state_value(&run)?).await?;
        let mut before = format!(
            "status: {name}_complete\n\
             collected: {}\n\
             next: weigh the expert analysis below against your own findings, then {}\n",
            run.summary(),
            self.kind.final_action()
        );
        for note in notes {
            before.push_str(&format!("note: {note}\n"));
        }
        before.push_str("\n=== EXPERT ANALYSIS ===\n");
        let answer = super::pages::Answer {
            before,
            ..engine::answer(&result)
        };
        Ok(ToolOutput::text(answer.to_text(context.result_budget())))
    }
}

/// The unfinished run of `tool` on `thread`.
async fn load_run(context: &CallContext, tool: &str, thread: &str) -> Result<Run, ToolError> {
    let run: Run = match engine::workflow_state(context, thread, tool).await? {
        Some(value) => serde_json::from_value(value).map_err(|e| {
            ToolError::Failed(format!(
                "the stored {tool} run on this thread is unreadable ({e}); start a new run with step_number 1"
            ))
        })?,
        None => {
            return Err(ToolError::InvalidArguments(format!(
                "no {tool} run on continuation_id {thread}: start one with step_number 1 \
                 (you may keep this continuation_id)"
            )));
        }
    };
    if run.completed {
        return Err(ToolError::InvalidArguments(format!(
            "this {tool} run is already complete; start a new run with step_number 1 \
             (you may keep this continuation_id)"
        )));
    }
    Ok(run)
}

fn state_value(run: &Run) -> Result<Value, ToolError> {
    serde_json::to_value(run)
        .map_err(|e| ToolError::Failed(format!("cannot store the run's state: {e}")))
}

/// The answer to an intermediate step.
fn pause_text(
    name: &str,
    step: &Step,
    run: &Run,
    guidance: &str,
    note: Option<String>,
    thread: &str,
) -> String {
    let next_number = step.step_number + 1;
    let total = step.total_steps.max(next_number);
    let mut text = format!(
        "status: pause_for_{name}\n\
         step {} of {} recorded; collected: {}.\n",
        step.step_number,
        step.total_steps,
        run.summary()
    );
    if let Some(note) = note {
        text.push_str(&note);
        text.push('\n');
    }
    if step.step_number == 1 {
        text.push_str(
            "each step: put what you learned in findings, files you read in files_checked, files \
             that matter in relevant_files (absolute paths), key functions in relevant_context.\n",
        );
    }
    text.push_str(&format!(
        "next: {guidance} Do this yourself now (no expert is consulted yet), then call {name} with \
         step_number {next_number}, total_steps {total} and this continuation_id; set \
         next_step_required false on the last step.\n\
         continuation_id: {thread}"
    ));
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn final_step(extra: Value) -> Step {
        let mut args = json!({
            "step": "done", "step_number": 2, "total_steps": 2,
            "next_step_required": false, "findings": "all"
        });
        if let (Some(base), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        Step::parse(args.as_object().unwrap(), Fields::default()).unwrap()
    }

    fn reason(kind: &dyn Kind, extra: Value, own: Value) -> Option<String> {
        let step = final_step(extra);
        let mut run = Run::default();
        run.push(&step, own.as_object().cloned().unwrap_or_default());
        skip_reason(kind, &step, &run)
    }

    #[test]
    fn skip_rules() {
        assert_eq!(reason(&debug::Debug, json!({}), json!({})), None);
        assert_eq!(
            reason(&debug::Debug, json!({"confidence": "very_high"}), json!({})),
            None
        );
        assert!(
            reason(&debug::Debug, json!({"confidence": "certain"}), json!({}))
                .unwrap()
                .contains("certain")
        );
        assert!(
            reason(
                &debug::Debug,
                json!({"use_assistant_model": false}),
                json!({})
            )
            .unwrap()
            .contains("use_assistant_model")
        );
        assert!(
            reason(
                &precommit::Precommit,
                json!({}),
                json!({"precommit_type": "internal"})
            )
            .unwrap()
            .contains("internal")
        );
        assert!(
            reason(
                &codereview::CodeReview,
                json!({}),
                json!({"review_validation_type": "internal"})
            )
            .unwrap()
            .contains("internal")
        );
    }

    #[test]
    fn every_tool_builds_with_its_yaml_and_a_schema() {
        let dir = tempfile::tempdir().unwrap();
        for name in TOOLS {
            let config = crate::tools::config::load(name, dir.path()).unwrap();
            let tool = build(name, &config, dir.path(), &mut Vec::new()).unwrap();
            assert_eq!(tool.spec().name, *name);
            assert!(!tool.spec().description.is_empty());
        }
    }

    /// What a tools/list entry costs, roughly as the MCP layer writes it.
    fn entry_bytes(spec: &ToolSpec) -> usize {
        json!({
            "name": spec.name,
            "description": spec.description,
            "inputSchema": spec.input_schema,
            "annotations": {"title": spec.title, "readOnlyHint": spec.read_only, "openWorldHint": spec.open_world}
        })
        .to_string()
        .len()
    }

    #[test]
    fn the_tools_fit_their_share_of_the_tools_list_budget() {
        // The whole surface (tools/list + instructions) must stay within 16 KB with the
        // conversational tools present; these ten get about 9 KB of it.
        let dir = tempfile::tempdir().unwrap();
        let (mut entries, mut schemas) = (0, 0);
        let mut sizes = Vec::new();
        for name in TOOLS {
            let config = crate::tools::config::load(name, dir.path()).unwrap();
            let tool = build(name, &config, dir.path(), &mut Vec::new()).unwrap();
            let spec = tool.spec();
            let bytes = entry_bytes(spec);
            sizes.push(format!("{name}: {bytes}"));
            entries += bytes;
            schemas +=
                spec.description.len() + Value::Object(spec.input_schema.clone()).to_string().len();
        }
        assert!(schemas <= 9 * 1024, "schemas+descriptions: {schemas} bytes");
        assert!(
            entries <= 9_600,
            "tools/list entries: {entries} bytes: {sizes:?}"
        );
    }
}
