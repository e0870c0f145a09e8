//! `Daemon`: the state one zend shares across all its sessions, and the
//! [`Settings`] in force.
//!
//! Settings are built whole from the configuration files (`server.yaml`,
//! `models.yaml`, `limits.yaml`, `clink.yaml`, `tools/*.yaml`, `.env`) and
//! swapped in at once by [`Daemon::reload`]: a call takes one snapshot
//! ([`Daemon::settings`]) when it starts and keeps it to the end, so a reload
//! never changes a running call, and a file that does not load leaves the
//! settings in force untouched (the error is kept for `zend status`/`doctor`
//! and named in the next failing call).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::locations::Locations;
use crate::sessions::Sessions;
use crate::tools;
use crate::tools::settings::{Settings, SettingsError, sources_hash};

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

impl tools::Host for Daemon {
    fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    fn locations(&self) -> &Locations {
        &self.locations
    }
}
