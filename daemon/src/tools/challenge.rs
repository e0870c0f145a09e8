//! `challenge`: wraps a statement in instructions to re-examine it critically,
//! so the assistant does not agree by reflex. No model call (as Zen's).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::args::{self, schema};
use super::config::ToolConfig;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

pub struct Challenge {
    spec: ToolSpec,
}

#[derive(Deserialize)]
struct Args {
    prompt: String,
}

impl Challenge {
    pub fn new(config: &ToolConfig) -> Self {
        Self {
            spec: ToolSpec::local(
                "challenge",
                config,
                object_schema(
                    &[schema::prompt("The statement to scrutinize.")],
                    &["prompt"],
                ),
            ),
        }
    }
}

#[async_trait::async_trait]
impl Tool for Challenge {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        if args.prompt.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`prompt` is empty: pass the statement to challenge".into(),
            ));
        }
        Ok(ToolOutput::text(challenge_text(&args.prompt)))
    }
}

pub fn challenge_text(statement: &str) -> String {
    format!(
        "status: challenge_accepted\n\
         CRITICAL REASSESSMENT — do not automatically agree:\n\n\"{}\"\n\n\
         Evaluate the statement above. Is it accurate, complete and well-reasoned? Investigate (read the \
         code, check the facts) before replying if needed. If you find flaws, gaps or misleading points, \
         say so plainly and explain them; if the reasoning holds up, explain why. Stay on point and avoid \
         reflexive agreement.",
        statement.trim()
    )
}
