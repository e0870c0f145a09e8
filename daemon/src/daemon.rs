//! `Daemon`: the state one zend shares across all its sessions. Built once at
//! start (configuration resolved into runtime objects), then read-only apart
//! from the session table and the store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::locations::Locations;
use crate::sessions::Sessions;
use crate::tools;

pub struct Daemon {
    pub started: Instant,
    pub locations: Locations,
    pub socket_path: PathBuf,
    pub server: ServerConfig,
    /// Started by a shim (so it exits when idle), not by hand or a service manager.
    pub auto_started: bool,
    pub sessions: Sessions,
    /// Cancelled when zend begins shutting down.
    pub shutdown: CancellationToken,
    pub tools: tools::Registry,
    pub limiter: tools::limits::Limiter,
    /// The store, with conversation memory and the cost ledger on it.
    pub store: crate::data::Data,
    /// Every model call goes through here.
    pub providers: crate::providers::Providers,
    /// What tools may read: every path a tool reads is checked here.
    pub files: tools::files::FilePolicy,
    /// The dashboard's login codes, browser sessions and listener.
    pub dashboard: crate::access::DashboardAccess,
    /// Milliseconds live calls get on shutdown (server.yaml, or what `zend stop` asked).
    shutdown_deadline_ms: AtomicU64,
}

impl Daemon {
    pub fn new(
        locations: Locations,
        socket_path: PathBuf,
        server: ServerConfig,
        auto_started: bool,
        store: crate::data::Data,
        providers: crate::providers::Providers,
        tools: tools::Registry,
    ) -> Self {
        let files = tools::files::FilePolicy::new(
            &[
                ("config", &locations.config_dir),
                ("data", &locations.data_dir),
                ("state", &locations.state_dir),
                ("runtime", &locations.runtime_dir),
            ],
            &server.files,
            &locations.config_dir.join("server.yaml"),
        );
        Self {
            started: Instant::now(),
            files,
            locations,
            socket_path,
            limiter: tools.limiter(),
            tools,
            auto_started,
            sessions: Sessions::default(),
            dashboard: crate::access::DashboardAccess::default(),
            shutdown: CancellationToken::new(),
            shutdown_deadline_ms: AtomicU64::new(
                server.shutdown_deadline_secs.saturating_mul(1000),
            ),
            server,
            store,
            providers,
        }
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
pub fn disabled_tools(server: &ServerConfig, config_dir: &std::path::Path) -> Vec<String> {
    let mut disabled = server.disabled_tools.clone();
    if let Some(list) = crate::providers::Env::load(Some(config_dir)).get("DISABLED_TOOLS") {
        disabled.extend(
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
    }
    disabled
}
