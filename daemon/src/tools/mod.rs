//! The tool layer: the `Tool` trait, the registry of enabled tools, and the
//! context every call runs in.
//!
//! Tools are domain code: they see a [`CallContext`] (session, request id,
//! working directory, progress sink, cancellation) and JSON arguments, and they
//! return a [`ToolOutput`]. They know nothing of rmcp or tonic (the `mcp` module
//! translates), and they never speak HTTP (every model call goes through
//! `providers`).

mod apilookup;
pub mod args;
mod challenge;
mod chat;
pub mod config;
mod consensus;
pub mod engine;
pub mod files;
pub mod limits;
mod listmodels;
pub mod pages;
mod planner;
pub mod plugin;
pub mod prompts;
pub mod settings;
mod threads;
mod version;
pub mod workflow;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::data::Data;
use crate::locations::Locations;
use crate::sessions::Session;
use config::ToolConfig;
use settings::Settings;

/// Tools that are always on, whatever `disabled_tools` says.
pub const ALWAYS_ON: &[&str] = &["version", "listmodels"];

/// The built-in tools defined in this module, by name; each has
/// `config/tools/<name>.yaml`. The step-protocol tools are `workflow::TOOLS`.
pub const CONVERSATIONAL: &[&str] = &[
    "apilookup",
    "challenge",
    "chat",
    "consensus",
    "listmodels",
    "planner",
    "thinkdeep",
    "threads",
    "version",
];

/// Every built-in tool, by name: the conversational ones, then the workflow ones.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    CONVERSATIONAL.iter().chain(workflow::TOOLS).copied()
}

/// What clients see of a tool in `tools/list`.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub input_schema: Map<String, Value>,
    /// The tool changes nothing outside zen's own store.
    pub read_only: bool,
    /// The tool talks to the outside world (a model provider).
    pub open_world: bool,
}

impl ToolSpec {
    /// A tool that reads only zen's own state and calls no model.
    pub fn local(name: &str, config: &ToolConfig, input_schema: Map<String, Value>) -> Self {
        Self {
            name: name.to_owned(),
            title: config.title.clone(),
            description: config.description.clone(),
            input_schema,
            read_only: true,
            open_world: false,
        }
    }

    /// A tool that consults a model provider (the outside world) and changes nothing.
    pub fn model(name: &str, config: &ToolConfig, input_schema: Map<String, Value>) -> Self {
        Self {
            open_world: true,
            ..Self::local(name, config, input_schema)
        }
    }
}

/// Receives progress while a call runs; the MCP layer turns it into
/// `notifications/progress` when the client asked for them.
pub trait ProgressSink: Send + Sync {
    fn progress(&self, progress: f64, total: Option<f64>, message: String);

    /// Whether anyone listens: a call whose client sent no progress token sets no
    /// progress timer (each new timer wakes the runtime's driver once).
    fn wanted(&self) -> bool {
        true
    }
}

/// A sink for calls whose client sent no progress token.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn progress(&self, _progress: f64, _total: Option<f64>, _message: String) {}

    fn wanted(&self) -> bool {
        false
    }
}

/// What a tool may know of the zend it runs in (`version` reports it); the
/// daemon implements it, so tools never see the daemon's whole state.
pub trait Host: Send + Sync {
    fn uptime(&self) -> std::time::Duration;
    fn live_sessions(&self) -> usize;
    fn socket_path(&self) -> &std::path::Path;
    fn locations(&self) -> &Locations;
}

/// Everything a tool call may know about where it runs.
pub struct CallContext {
    /// The zend this call runs in, as far as a tool may know it.
    pub host: Arc<dyn Host>,
    /// Conversation memory and the ledger.
    pub data: Data,
    /// The configuration this call runs with from start to end, whatever a
    /// reload swaps in meanwhile.
    pub settings: Arc<Settings>,
    pub session: Arc<Session>,
    /// The JSON-RPC request id, as text.
    pub request_id: String,
    pub progress: Arc<dyn ProgressSink>,
    /// Cancelled when the client sends `notifications/cancelled` or the session ends.
    pub cancel: CancellationToken,
    /// Bytes this call has read from files (capped, see `files`).
    pub reads: files::ReadMeter,
}

impl CallContext {
    /// The most text this session's client takes in one result (bytes; `None` = no limit).
    pub fn result_budget(&self) -> Option<usize> {
        self.settings
            .server
            .result_budget(&self.session.client_name())
    }
}

/// A tool's answer: the text the assistant reads, and whether it is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub text: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: false,
        }
    }
}

/// Why a call failed, as the assistant will read it (as an `isError` result).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    Failed(String),
    #[error("cancelled by the client")]
    Cancelled,
    /// Refused by a rate limit, concurrency cap or budget; the text says when to retry.
    #[error("{0}")]
    Busy(String),
}

impl ToolError {
    /// A short name for logs (the text may quote what the call sent).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArguments(_) => "invalid_arguments",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
            Self::Busy(_) => "busy",
        }
    }
}

/// One tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError>;
}

/// The enabled tools, by name.
#[derive(Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    configs: BTreeMap<String, ToolConfig>,
}

impl Registry {
    /// The built-in tools with their configuration (built-in YAML plus the
    /// user's overrides), then the user's plugins, minus the disabled ones
    /// (`ALWAYS_ON` tools cannot be disabled; `enabled: false` disables).
    /// A broken user file is reported and skipped (a built-in tool then keeps
    /// its built-in settings); the problems are returned for `doctor`.
    pub fn load(config_dir: &Path, disabled: &[String]) -> (Self, Vec<String>) {
        let mut registry = Self::default();
        let mut problems = Vec::new();
        let is_disabled = |name: &str, config: &ToolConfig| {
            !ALWAYS_ON.contains(&name)
                && (!config.enabled || disabled.iter().any(|d| d.trim().eq_ignore_ascii_case(name)))
        };
        for name in builtin_names() {
            let config = match config::load(name, config_dir) {
                Ok(config) => config,
                Err(error) => {
                    problems.push(format!("{error} (using the built-in settings of `{name}`)"));
                    match config::load_builtin(name) {
                        Ok(config) => config,
                        Err(_) => continue,
                    }
                }
            };
            if is_disabled(name, &config) {
                continue;
            }
            let tool: Arc<dyn Tool> = match name {
                "version" => Arc::new(version::Version::new(&config)),
                "challenge" => Arc::new(challenge::Challenge::new(&config)),
                "apilookup" => Arc::new(apilookup::ApiLookup::new(&config)),
                "chat" => Arc::new(chat::ModelTool::chat(&config)),
                "consensus" => Arc::new(consensus::Consensus::new(&config)),
                "planner" => Arc::new(planner::Planner::new(&config)),
                "threads" => Arc::new(threads::Threads::new(&config)),
                "listmodels" => Arc::new(listmodels::ListModels::new(&config)),
                "thinkdeep" => Arc::new(chat::ModelTool::thinkdeep(&config)),
                _ => match workflow::build(name, &config, config_dir, &mut problems) {
                    Some(tool) => tool,
                    None => continue,
                },
            };
            registry.tools.insert(name.to_owned(), tool);
            registry.configs.insert(name.to_owned(), config);
        }
        let builtin: Vec<&str> = builtin_names().collect();
        let (plugins, errors) = plugin::load_all(config_dir, &builtin);
        problems.extend(errors.iter().map(ToString::to_string));
        for plugin in plugins {
            let name = plugin.name.clone();
            if is_disabled(&name, &plugin.config) || registry.tools.contains_key(&name) {
                continue;
            }
            registry.configs.insert(name.clone(), plugin.config.clone());
            registry
                .tools
                .insert(name, Arc::new(chat::ModelTool::plugin(plugin)));
        }
        for problem in &problems {
            tracing::warn!("{problem}");
        }
        (registry, problems)
    }

    /// A tool's configuration (built-in tools and plugins alike).
    pub fn config(&self, name: &str) -> Option<&ToolConfig> {
        self.configs.get(name)
    }

    /// Applies limits.yaml's per-tool limits over the tools' own.
    pub fn override_limits(&mut self, limits: BTreeMap<String, config::ToolLimits>) {
        for (name, limit) in limits {
            if let Some(config) = self.configs.get_mut(&name) {
                config.limits = limit;
            }
        }
    }

    /// Every tool's limits, by name (limits.yaml's over the tool's own).
    pub fn limits(&self) -> BTreeMap<String, config::ToolLimits> {
        self.configs
            .iter()
            .map(|(name, config)| (name.clone(), config.limits.clone()))
            .collect()
    }

    /// Admission control built from every tool's `limits`.
    pub fn limiter(&self) -> limits::Limiter {
        limits::Limiter::new(
            self.configs
                .iter()
                .map(|(name, config)| (name.as_str(), &config.limits)),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Tools in a stable order (by name).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }
}

/// Builds a JSON Schema object from `(name, type, description, required)` rows.
pub fn object_schema(properties: &[(&str, Value)], required: &[&str]) -> Map<String, Value> {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert((*name).to_owned(), schema.clone());
    }
    let mut schema = Map::new();
    schema.insert("type".into(), Value::from("object"));
    schema.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        schema.insert("required".into(), Value::from(required.to_vec()));
    }
    schema
}

/// How long a cancelled tool may take to wind down (record its spend).
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one tool call inside the middleware every call goes through: admission
/// (rate limits, concurrency caps), a tracing span, timing, cancellation, and
/// the result budget (model answers page themselves; any other text over it is
/// cut with a note). Budget checks and ledger writes happen per model call, in
/// `engine`.
pub async fn execute(
    tool: &Arc<dyn Tool>,
    context: &CallContext,
    arguments: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    use tracing::Instrument;
    let name = tool.spec().name.clone();
    let span = tracing::info_span!("tool", tool = %name, session = %context.session.id, id = %context.request_id);
    async {
        let _admission = context.settings.limiter.admit(&name).await?;
        let started = std::time::Instant::now();
        let call = tool.call(context, arguments);
        tokio::pin!(call);
        let outcome = tokio::select! {
            outcome = &mut call => outcome,
            // Tools watch the token themselves (a model call aborts its request and
            // records what was spent); give them a moment to do so, then drop them.
            () = context.cancel.cancelled() => {
                tokio::time::timeout(CANCEL_GRACE, &mut call).await.unwrap_or(Err(ToolError::Cancelled))
            }
        };
        let outcome = outcome.map(|output| ToolOutput {
            text: pages::fit(output.text, context.result_budget()),
            ..output
        });
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            // The ledger records model calls; a log line per call would cost every call a write.
            Ok(output) => tracing::debug!(elapsed_ms, is_error = output.is_error, "tool call done"),
            // The text may quote an argument or an upstream answer (the prompt).
            Err(error) => tracing::info!(
                elapsed_ms,
                kind = error.kind(),
                error = %crate::logging::Sensitive(error),
                "tool call failed"
            ),
        }
        outcome
    }
    .instrument(span)
    .await
}
