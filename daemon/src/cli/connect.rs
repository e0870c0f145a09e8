//! Reaching zend from the command line: connect to its socket, or start it the
//! way zen-shim does and wait until it answers.
//!
//! The same steps as `shim/src/connect.rs` (duplicated, because the shim must
//! not depend on this crate): try the socket; when a service manager owns zend
//! (`zend.managed` beside the socket) only wait for it; when `ZEN_NO_AUTOSTART=1`
//! give up (exit 3); else re-run this executable as `zend serve --auto-started`
//! detached (own session, stdio on /dev/null) and retry with backoff. zend's
//! lock file makes racing starters end up on one daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::Channel;
use zen_proto::v1::zend_client::ZendClient;

use super::CliError;
use crate::client::{self, ClientError};
use crate::locations::{Locations, Overrides};

/// Set to `1` to never start zend (as for zen-shim).
pub const NO_AUTOSTART_ENV: &str = "ZEN_NO_AUTOSTART";
/// How long to wait for a service-managed daemon to answer.
const MANAGED_WAIT: Duration = Duration::from_secs(3);
/// How long to wait for a freshly started daemon to answer.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Which daemon a command talks to, and whether it may start one.
#[derive(Debug, Clone)]
pub struct Target {
    pub socket: PathBuf,
    /// Passed on to a daemon this command starts, so it uses the same directories.
    pub overrides: Overrides,
    pub autostart: bool,
}

impl Target {
    /// The daemon of these directories; auto-start unless `ZEN_NO_AUTOSTART=1`.
    pub fn new(overrides: Overrides) -> Result<Self, CliError> {
        let socket = Locations::resolve(&overrides)?.socket_path();
        Ok(Self {
            socket,
            overrides,
            autostart: !std::env::var(NO_AUTOSTART_ENV).is_ok_and(|v| v == "1"),
        })
    }

    /// Connects to the running zend; never starts one.
    pub async fn connect(&self) -> Result<ZendClient<Channel>, CliError> {
        Ok(client::connect(&self.socket).await?)
    }

    /// Connects, starting zend first when nothing answers and that is allowed.
    pub async fn connect_or_start(&self) -> Result<ZendClient<Channel>, CliError> {
        match client::connect(&self.socket).await {
            Ok(client) => return Ok(client),
            Err(ClientError::NotRunning(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let socket = &self.socket;
        let marker = zen_proto::paths::managed_marker(socket);
        if marker.exists() {
            let started = tokio::time::Instant::now();
            while started.elapsed() < MANAGED_WAIT {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(client) = client::connect(socket).await {
                    return Ok(client);
                }
            }
            return Err(CliError::NotRunning(format!(
                "no zend answers at {} and a service manager owns it ({} exists); check `zend service status`",
                socket.display(),
                marker.display()
            )));
        }
        if !self.autostart {
            return Err(CliError::NotRunning(format!(
                "zend is not running (nothing answers at {}) and {NO_AUTOSTART_ENV}=1 forbids starting one; \
                 start it with `zend serve`, or unset {NO_AUTOSTART_ENV}",
                socket.display()
            )));
        }
        let zend = std::env::current_exe()?;
        let mut child = spawn_detached(&zend, &self.overrides)?;
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(1);
        loop {
            tokio::time::sleep(delay).await;
            if let Ok(client) = client::connect(socket).await {
                // A detached daemon, or one that lost the race and exited: reap it
                // without blocking.
                std::thread::spawn(move || child.wait());
                return Ok(client);
            }
            if let Ok(Some(status)) = child.try_wait()
                && !status.success()
            {
                return Err(CliError::NotRunning(format!(
                    "started {} but it exited with {status}; run `zend serve` in a terminal to see why \
                     (or `zend doctor`)",
                    zend.display()
                )));
            }
            if started.elapsed() > START_DEADLINE {
                return Err(CliError::NotRunning(format!(
                    "started {} but nothing answered at {} within {}s; see `zend logs`",
                    zend.display(),
                    socket.display(),
                    START_DEADLINE.as_secs()
                )));
            }
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }
}

fn spawn_detached(zend: &Path, overrides: &Overrides) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut command = Command::new(zend);
    command.args(["serve", "--auto-started"]);
    for (flag, value) in [
        ("--home", &overrides.home),
        ("--config-dir", &overrides.config_dir),
        ("--data-dir", &overrides.data_dir),
        ("--state-dir", &overrides.state_dir),
        ("--runtime-dir", &overrides.runtime_dir),
    ] {
        if let Some(value) = value {
            command.arg(flag).arg(value);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; it detaches zend from this terminal's
    // session so the user's Ctrl-C does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.spawn()
}
