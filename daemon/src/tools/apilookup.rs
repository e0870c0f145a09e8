//! `apilookup`: tells the assistant how to look up current API documentation with
//! its own web search (models' training data lags behind releases). No model call.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::args::{self, schema};
use super::config::ToolConfig;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

pub struct ApiLookup {
    spec: ToolSpec,
}

#[derive(Deserialize)]
struct Args {
    prompt: String,
}

impl ApiLookup {
    pub fn new(config: &ToolConfig) -> Self {
        Self {
            spec: ToolSpec::local(
                "apilookup",
                config,
                object_schema(
                    &[schema::prompt(
                        "The API, SDK or library and what you need to know.",
                    )],
                    &["prompt"],
                ),
            ),
        }
    }
}

#[async_trait::async_trait]
impl Tool for ApiLookup {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        let days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0) as i64;
        let (y, m, d) = crate::time::civil_from_days(days);
        Ok(ToolOutput::text(format!(
            "status: web_lookup_needed\n\
             Today is {y:04}-{m:02}-{d:02}. Your training data may predate the current version of what is asked:\n\
             \"{query}\"\n\n\
             Before answering or writing code:\n\
             1. Use your web search to find the official documentation and the latest release (changelog, \
             release notes, package registry page) as of today.\n\
             2. Check for deprecations, breaking changes and migration guides since the version you know.\n\
             3. Prefer the vendor's own docs over blog posts; note the version you relied on.\n\
             4. Then answer with current APIs only, citing the pages you used.",
            query = args.prompt.trim()
        )))
    }
}
