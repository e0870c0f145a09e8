//! `planner`: step-by-step planning with revisions and branches, as Zen's. No
//! model call: the assistant does the thinking, zen keeps the plan. The plan is
//! the thread's workflow state (keyed by thread and tool), so two sessions
//! planning at once never see each other's steps, and a plan survives restarts.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::args;
use super::config::ToolConfig;
use super::engine;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

pub struct Planner {
    spec: ToolSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    step: String,
    step_number: u32,
    total_steps: u32,
    next_step_required: bool,
    #[serde(default)]
    is_step_revision: bool,
    #[serde(default)]
    revises_step_number: Option<u32>,
    #[serde(default)]
    is_branch_point: bool,
    #[serde(default)]
    branch_from_step: Option<u32>,
    #[serde(default)]
    branch_id: Option<String>,
    #[serde(default)]
    more_steps_needed: bool,
    #[serde(default)]
    continuation_id: Option<String>,
    /// Accepted for compatibility; the planner makes no model call.
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Step {
    number: u32,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branch_from: Option<u32>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Plan {
    steps: Vec<Step>,
    total_steps: u32,
}

impl Planner {
    pub fn new(config: &ToolConfig) -> Self {
        let int = |d: &str| json!({"type": "integer", "minimum": 1, "description": d});
        let properties = [
            (
                "step",
                json!({"type": "string", "description": "This planning step's content."}),
            ),
            ("step_number", int("1-based.")),
            ("total_steps", int("Your current estimate; may change.")),
            ("next_step_required", json!({"type": "boolean"})),
            ("is_step_revision", json!({"type": "boolean"})),
            ("revises_step_number", json!({"type": "integer"})),
            ("is_branch_point", json!({"type": "boolean"})),
            ("branch_from_step", json!({"type": "integer"})),
            ("branch_id", json!({"type": "string"})),
            ("more_steps_needed", json!({"type": "boolean"})),
            (
                "continuation_id",
                json!({"type": "string", "description": "From step 1's answer; required after step 1."}),
            ),
        ];
        Self {
            spec: ToolSpec::local(
                "planner",
                config,
                object_schema(
                    &properties,
                    &["step", "step_number", "total_steps", "next_step_required"],
                ),
            ),
        }
    }
}

#[async_trait::async_trait]
impl Tool for Planner {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        if args.step.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`step` is empty: describe this planning step".into(),
            ));
        }
        if args.step_number == 0 || args.total_steps == 0 {
            return Err(ToolError::InvalidArguments(
                "`step_number` and `total_steps` start at 1".into(),
            ));
        }
        let total = args.total_steps.max(args.step_number);
        if args.step_number > 1
            && args
                .continuation_id
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
        {
            return Err(ToolError::InvalidArguments(
                "`continuation_id` is required after step 1: pass the one step 1 returned".into(),
            ));
        }
        let thread = engine::open_thread(
            context,
            "planner",
            args.continuation_id.as_deref(),
            &args.step,
        )
        .await?;
        let mut plan: Plan = match engine::workflow_state(context, &thread, "planner").await? {
            // Step 1 starts a new plan, even on a thread that had one.
            Some(state) if args.step_number > 1 => {
                serde_json::from_value(state).unwrap_or_default()
            }
            _ => Plan::default(),
        };
        let step = Step {
            number: args.step_number,
            text: args.step.trim().to_owned(),
            branch: args
                .branch_id
                .clone()
                .filter(|_| args.is_branch_point || args.branch_from_step.is_some()),
            branch_from: args.branch_from_step,
        };
        match args.revises_step_number.filter(|_| args.is_step_revision) {
            Some(revised) => match plan
                .steps
                .iter_mut()
                .find(|s| s.number == revised && s.branch == step.branch)
            {
                Some(existing) => existing.text = step.text.clone(),
                None => plan.steps.push(step.clone()),
            },
            None => {
                plan.steps
                    .retain(|s| !(s.number == step.number && s.branch == step.branch));
                plan.steps.push(step.clone());
            }
        }
        plan.total_steps = total;
        engine::set_workflow_state(
            context,
            &thread,
            "planner",
            serde_json::to_value(&plan).unwrap_or_default(),
        )
        .await?;
        let remaining = engine::record_turn(
            context,
            &thread,
            "planner",
            true,
            &format!("Plan step {}: {}", step.number, step.text),
            &[],
        )
        .await?
        .remaining_turns;

        let finished = !args.next_step_required && !args.more_steps_needed;
        let mut text = String::new();
        if finished {
            text.push_str("status: planning_complete\n\n## The plan\n");
            let mut steps = plan.steps.clone();
            steps.sort_by(|a, b| {
                (a.branch.is_some(), &a.branch, a.number).cmp(&(
                    b.branch.is_some(),
                    &b.branch,
                    b.number,
                ))
            });
            for s in &steps {
                match (&s.branch, s.branch_from) {
                    (Some(branch), Some(from)) => text.push_str(&format!(
                        "{}. [branch {branch} from step {from}] {}\n",
                        s.number, s.text
                    )),
                    (Some(branch), None) => {
                        text.push_str(&format!("{}. [branch {branch}] {}\n", s.number, s.text))
                    }
                    _ => text.push_str(&format!("{}. {}\n", s.number, s.text)),
                }
            }
            text.push_str(
                "\nnext: present this plan to the user as a clear, numbered list with the branches as \
                 alternatives, then start on step 1 once they agree.\n",
            );
        } else {
            text.push_str(&format!(
                "status: pause_for_planning (step {} of {total})\n",
                step.number
            ));
            if step.number == 1 && total >= 5 {
                text.push_str(
                    "next: this is a complex plan. Before step 2, stop and think: what is the real goal, what are \
                     the constraints, which approaches exist, and what could go wrong? Then describe step 2.\n",
                );
            } else {
                text.push_str(&format!(
                    "next: think through step {} (revise an earlier step with is_step_revision, or explore an \
                     alternative with is_branch_point), then call planner again.\n",
                    step.number + 1
                ));
            }
        }
        text.push_str(&format!(
            "continuation_id: {thread} ({} turns left)",
            remaining / 2
        ));
        Ok(ToolOutput::text(text))
    }
}
