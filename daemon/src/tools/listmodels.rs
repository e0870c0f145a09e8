//! `listmodels`: the models zen can use right now and the providers that still
//! need configuring (and how). Always on; makes no model call.

use serde_json::{Map, Value};

use super::config::ToolConfig;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

pub struct ListModels {
    spec: ToolSpec,
}

impl ListModels {
    pub fn new(config: &ToolConfig) -> Self {
        Self {
            spec: ToolSpec::local("listmodels", config, object_schema(&[], &[])),
        }
    }
}

#[async_trait::async_trait]
impl Tool for ListModels {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        _arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text(
            context.settings.providers.listing().render_text(),
        ))
    }
}
