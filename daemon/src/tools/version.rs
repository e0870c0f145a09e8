//! `version`: what is running — daemon and shim versions, uptime, paths, sessions.
//! Always on; makes no model call.

use serde_json::{Map, Value};

use super::config::ToolConfig;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

pub struct Version {
    spec: ToolSpec,
}

impl Version {
    pub fn new(config: &ToolConfig) -> Self {
        Self {
            spec: ToolSpec::local("version", config, object_schema(&[], &[])),
        }
    }
}

#[async_trait::async_trait]
impl Tool for Version {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        _arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let host = &context.host;
        let locations = host.locations();
        let shim = match context.session.meta.shim_version.as_str() {
            "" => "unknown".to_owned(),
            v => v.to_owned(),
        };
        let skew = if shim != zen_proto::VERSION && shim != "unknown" {
            " (differs from zend: reinstall both binaries from one release)"
        } else {
            ""
        };
        let text = format!(
            "zen {version}\n\
             zend: {version} (pid {pid}, up {uptime})\n\
             zen-shim: {shim}{skew}\n\
             sessions: {sessions} live\n\
             socket: {socket}\n\
             config dir: {config}\n\
             data dir: {data}\n\
             log: {log}",
            version = zen_proto::VERSION,
            pid = std::process::id(),
            uptime = crate::util::human_duration(host.uptime()),
            sessions = host.live_sessions(),
            socket = host.socket_path().display(),
            config = locations.config_dir.display(),
            data = locations.data_dir.display(),
            log = locations.log_path().display(),
        );
        Ok(ToolOutput::text(text))
    }
}
