//! [`Settings`]: everything zend builds from its configuration files
//! (`server.yaml`, `models.yaml`, `limits.yaml`, `clink.yaml`, `tools/*.yaml`,
//! `.env`), built whole and swapped as one. A tool call holds one snapshot from
//! start to end, so it lives with the tools that read it; the daemon keeps the
//! current one and swaps it on reload.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigError, LimitsConfig, ServerConfig, ToolLimits};
use crate::locations::Locations;
use crate::providers::{Env, ProviderError, Providers};
use crate::tools;

/// The configuration files a reload reads, in the config directory (and every
/// `tools/*.yaml`).
pub const CONFIG_FILES: &[&str] = &[
    ".env",
    "server.yaml",
    "models.yaml",
    "limits.yaml",
    "clink.yaml",
];

/// Everything zend builds from its configuration, swapped as one.
pub struct Settings {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    /// Every model call goes through here.
    pub providers: Providers,
    pub tools: tools::Registry,
    /// Kept across a reload that leaves every tool's limits as they were, so
    /// running calls and new ones share their slots and windows.
    pub limiter: Arc<tools::limits::Limiter>,
    /// What tools may read: every path a tool reads is checked here.
    pub files: tools::files::FilePolicy,
    /// The variables the providers were built with (`.env` under zend's environment).
    pub env: Env,
    /// Tool files that did not load and were skipped (with file and line).
    pub tool_problems: Vec<String>,
    pub(crate) tool_limits: BTreeMap<String, ToolLimits>,
    /// What clients see of the tools, to tell whether a reload changed it.
    pub(crate) tools_seen: u64,
    /// A hash of the files' bytes as read for these settings.
    pub(crate) sources: u64,
}

/// Why settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Providers(#[from] ProviderError),
    #[error("{}", .0.join("; "))]
    Tools(Vec<String>),
}

impl Settings {
    /// Reads and builds the whole configuration (blocking file reads). Broken
    /// tool files are skipped and listed in `tool_problems`.
    pub fn load(
        locations: &Locations,
        idle_timeout_secs: Option<u64>,
    ) -> Result<Self, SettingsError> {
        let dir = &locations.config_dir;
        let sources = sources_hash(dir);
        let mut server = ServerConfig::load(dir)?;
        if let Some(secs) = idle_timeout_secs {
            server.idle_timeout_secs = secs;
        }
        let mut limits = LimitsConfig::load(dir)?;
        let env = Env::load(Some(dir));
        // Zen's CONVERSATION_TIMEOUT_HOURS / MAX_CONVERSATION_TURNS, for people moving from
        // Zen: from zend's environment or zen's .env, as keys.
        limits
            .threads
            .apply_zen_env(|name| env.get(name).map(str::to_owned));
        let providers = Providers::load(Some(dir), &env)?;
        let (mut tools, tool_problems) = tools::Registry::load(dir, &disabled_tools(&server, &env));
        tools.override_limits(limits.tools.clone());
        let tool_limits = tools.limits();
        let files = tools::files::FilePolicy::new(
            &[
                ("config", &locations.config_dir),
                ("data", &locations.data_dir),
                ("state", &locations.state_dir),
                ("runtime", &locations.runtime_dir),
            ],
            &server.files,
            &dir.join("server.yaml"),
        );
        let mut seen = std::collections::hash_map::DefaultHasher::new();
        for tool in tools.iter() {
            let spec = tool.spec();
            (&spec.name, &spec.title, &spec.description).hash(&mut seen);
            serde_json::Value::Object(spec.input_schema.clone())
                .to_string()
                .hash(&mut seen);
            (spec.read_only, spec.open_world).hash(&mut seen);
        }
        Ok(Self {
            limiter: Arc::new(tools.limiter()),
            tools_seen: seen.finish(),
            server,
            limits,
            providers,
            tools,
            files,
            env,
            tool_problems,
            tool_limits,
            sources,
        })
    }
}

/// A hash of the configuration files' bytes (absent files count too), so a
/// change notice for files whose contents are what is loaded is ignored.
pub fn sources_hash(config_dir: &Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<PathBuf> = CONFIG_FILES.iter().map(|f| config_dir.join(f)).collect();
    if let Ok(entries) = std::fs::read_dir(config_dir.join("tools")) {
        let mut tools: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_tool_file(p))
            .collect();
        tools.sort();
        files.extend(tools);
    }
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// A `tools/*.yaml` file (a built-in tool's override or a plugin).
pub fn is_tool_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Tools to hide: server.yaml's `disabled_tools` plus Zen's `DISABLED_TOOLS`
/// variable (comma-separated; zend's environment or zen's `.env`, as keys),
/// kept so people moving from Zen keep their setup.
pub fn disabled_tools(server: &ServerConfig, env: &Env) -> Vec<String> {
    let mut disabled = server.disabled_tools.clone();
    if let Some(list) = env.get("DISABLED_TOOLS") {
        disabled.extend(
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
    }
    disabled
}
