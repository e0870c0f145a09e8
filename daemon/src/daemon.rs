//! `Daemon`: the state one zend shares across all its sessions, and
//! [`Settings`], the configuration it runs with.
//!
//! Settings are built whole from the configuration files (`server.yaml`,
//! `models.yaml`, `limits.yaml`, `clink.yaml`, `tools/*.yaml`, `.env`) and
//! swapped in at once by [`Daemon::reload`]: a call takes one snapshot
//! ([`Daemon::settings`]) when it starts and keeps it to the end, so a reload
//! never changes a running call, and a file that does not load leaves the
//! settings in force untouched (the error is kept for `zend status`/`doctor`
//! and named in the next failing call).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, LimitsConfig, ServerConfig, ToolLimits};
use crate::locations::Locations;
use crate::providers::{Env, ProviderError, Providers};
use crate::sessions::Sessions;
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
    tool_limits: BTreeMap<String, ToolLimits>,
    /// What clients see of the tools, to tell whether a reload changed it.
    tools_seen: u64,
    /// A hash of the files' bytes as read for these settings.
    sources: u64,
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

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The tools clients see changed (sessions were told: `tools/list_changed`).
    pub tools_changed: bool,
    /// Configurations loaded since start, this one included.
    pub loads: u64,
}

/// The last reload's outcome, for `zend status` and `zend doctor`.
#[derive(Debug, Clone, Default)]
pub struct ReloadState {
    /// Successful loads since start (the first, at start, is 1).
    pub loads: u64,
    /// Why the last reload failed (file:line and what is wrong); `None` once one succeeds.
    pub error: Option<String>,
}

pub struct Daemon {
    pub started: Instant,
    pub locations: Locations,
    pub socket_path: PathBuf,
    /// Started by a shim (so it exits when idle), not by hand or a service manager.
    pub auto_started: bool,
    pub sessions: Sessions,
    /// Cancelled when zend begins shutting down.
    pub shutdown: CancellationToken,
    /// The store, with conversation memory and the cost ledger on it.
    pub store: crate::data::Data,
    /// The dashboard's login codes, browser sessions and listener.
    pub dashboard: crate::access::DashboardAccess,
    settings: RwLock<Arc<Settings>>,
    /// `zend serve --idle-timeout`, kept over server.yaml's across reloads.
    idle_timeout_override: Option<u64>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    reload_state: Mutex<ReloadState>,
    /// Bumped whenever the tools clients see change.
    tools_version: watch::Sender<u64>,
    /// Bumped on every successful reload.
    generation: watch::Sender<u64>,
    /// Milliseconds live calls get on shutdown (server.yaml, or what `zend stop` asked).
    shutdown_deadline_ms: AtomicU64,
}

impl Daemon {
    pub fn new(
        locations: Locations,
        socket_path: PathBuf,
        settings: Settings,
        idle_timeout_override: Option<u64>,
        auto_started: bool,
        store: crate::data::Data,
    ) -> Self {
        Self {
            started: Instant::now(),
            locations,
            socket_path,
            auto_started,
            sessions: Sessions::default(),
            dashboard: crate::access::DashboardAccess::default(),
            shutdown: CancellationToken::new(),
            shutdown_deadline_ms: AtomicU64::new(
                settings.server.shutdown_deadline_secs.saturating_mul(1000),
            ),
            settings: RwLock::new(Arc::new(settings)),
            idle_timeout_override,
            reloading: tokio::sync::Mutex::new(()),
            reload_state: Mutex::new(ReloadState {
                loads: 1,
                error: None,
            }),
            tools_version: watch::channel(0).0,
            generation: watch::channel(0).0,
            store,
        }
    }

    /// The settings in force now; a call keeps the snapshot it took.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&crate::util::read(&self.settings))
    }

    pub fn reload_state(&self) -> ReloadState {
        crate::util::lock(&self.reload_state).clone()
    }

    /// Changes whenever the tools clients see change.
    pub fn watch_tools(&self) -> watch::Receiver<u64> {
        self.tools_version.subscribe()
    }

    /// Changes on every successful reload.
    pub fn watch_settings(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Whether the configuration files differ from what the settings in force
    /// were built from, or the last reload failed.
    pub fn needs_reload(&self) -> bool {
        self.reload_state().error.is_some()
            || sources_hash(&self.locations.config_dir) != self.settings().sources
    }

    /// Reads the whole configuration again and, if it loads, swaps it in.
    /// Nothing changes when it does not: the error (file:line, what is wrong)
    /// is returned, logged and kept for `zend status` until a reload succeeds.
    /// `why` says what asked (for the log).
    pub async fn reload(&self, why: &str) -> Result<Reloaded, String> {
        let _one = self.reloading.lock().await;
        let locations = self.locations.clone();
        let idle = self.idle_timeout_override;
        let loaded = tokio::task::spawn_blocking(move || Settings::load(&locations, idle))
            .await
            .unwrap_or_else(|e| {
                Err(SettingsError::Tools(vec![format!(
                    "the reload failed: {e}"
                )]))
            });
        let old = self.settings();
        let loaded = loaded.and_then(|new| {
            // A tool file that broke since the settings in force were built
            // fails the reload; one broken before stays skipped as at start.
            let broken: Vec<String> = new
                .tool_problems
                .iter()
                .filter(|p| !old.tool_problems.contains(p))
                .cloned()
                .collect();
            if broken.is_empty() {
                Ok(new)
            } else {
                Err(SettingsError::Tools(broken))
            }
        });
        let mut new = match loaded {
            Ok(new) => new,
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(why, error = %message, "configuration not reloaded; the previous one stays in force");
                crate::util::lock(&self.reload_state).error = Some(message.clone());
                return Err(message);
            }
        };
        if new.tool_limits == old.tool_limits {
            new.limiter = Arc::clone(&old.limiter);
        }
        let tools_changed = new.tools_seen != old.tools_seen;
        self.store.threads().set_config(new.limits.threads.clone());
        self.store.ledger().set_budgets(new.limits.budgets.clone());
        if !self.shutdown.is_cancelled() {
            self.set_shutdown_deadline(Duration::from_secs(new.server.shutdown_deadline_secs));
        }
        let new = Arc::new(new);
        *crate::util::write(&self.settings) = Arc::clone(&new);
        let loads = {
            let mut state = crate::util::lock(&self.reload_state);
            state.loads += 1;
            state.error = None;
            state.loads
        };
        if tools_changed {
            self.tools_version.send_modify(|v| *v += 1);
        }
        self.generation.send_modify(|v| *v += 1);
        tracing::info!(why, tools_changed, "configuration reloaded");
        // A LiteLLM proxy's models are listed again for the new providers.
        tokio::spawn(async move { new.providers.discover_models().await });
        Ok(Reloaded {
            tools_changed,
            loads,
        })
    }

    /// A note for a failed call while the last reload failed: the call ran
    /// with the configuration from before the edit.
    pub fn stale_note(&self) -> Option<String> {
        self.reload_state().error.map(|error| {
            format!(
                "(zend still runs its previous configuration: the last reload failed: {error}; \
                 fix the file and zend reloads it)"
            )
        })
    }

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms.load(Ordering::Relaxed))
    }

    pub fn set_shutdown_deadline(&self, deadline: Duration) {
        self.shutdown_deadline_ms
            .store(deadline.as_millis() as u64, Ordering::Relaxed);
    }
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
