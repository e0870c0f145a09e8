//! `threads`: find earlier conversations (users lose continuation ids when they
//! clear their assistant's context) or read one. No model call. The same data is
//! offered as MCP resources (`zen://threads/...`) and by `zend threads`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args;
use super::config::ToolConfig;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};
use crate::memory::{ThreadFilter, ThreadId, render};
use crate::store::{Clock, SystemClock};

pub struct Threads {
    spec: ToolSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Args {
    query: Option<String>,
    working_directory_absolute_path: Option<String>,
    tool: Option<String>,
    model: Option<String>,
    limit: Option<usize>,
    continuation_id: Option<String>,
}

impl Threads {
    pub fn new(config: &ToolConfig) -> Self {
        let properties = [
            (
                "query",
                json!({"type": "string", "description": "Text to look for in titles and turns."}),
            ),
            (
                "working_directory_absolute_path",
                json!({"type": "string", "description": "Only threads started under this directory."}),
            ),
            ("tool", json!({"type": "string"})),
            ("model", json!({"type": "string"})),
            (
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 100}),
            ),
            (
                "continuation_id",
                json!({"type": "string", "description": "Show this thread's turns."}),
            ),
        ];
        Self {
            spec: ToolSpec::local("threads", config, object_schema(&properties, &[])),
        }
    }
}

#[async_trait::async_trait]
impl Tool for Threads {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        let threads = context.daemon.store.threads();
        if let Some(id) = args
            .continuation_id
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            let id: ThreadId = id.parse().map_err(|e: crate::memory::ThreadError| {
                ToolError::InvalidArguments(e.to_string())
            })?;
            let thread = threads
                .get(&id)
                .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
            return Ok(ToolOutput::text(render::render_thread(&thread)));
        }
        let filter = ThreadFilter {
            cwd: args.working_directory_absolute_path,
            tool: args.tool,
            model: args.model,
            text: args.query,
            limit: args
                .limit
                .unwrap_or(ThreadFilter::DEFAULT_LIMIT)
                .clamp(1, 100),
        };
        let found = threads
            .list(&filter)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut text = render::render_list(&found, SystemClock.now());
        if !found.is_empty() {
            text.push_str(
                "\nPass a thread's id as continuation_id to any zen tool to continue it.",
            );
        }
        Ok(ToolOutput::text(text))
    }
}
