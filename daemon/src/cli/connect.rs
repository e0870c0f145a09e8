//! Reaching zend from the command line: connect to its socket, or start it the
//! way zen-shim does and wait until it answers (both through `zen_proto::client`:
//! a service manager's zend is only waited for, `ZEN_NO_AUTOSTART=1` gives up
//! with exit 3, else this executable is re-run as `zend serve --auto-started`).

use zen_proto::client::{Launcher, Mode};
use zen_proto::paths::Socket;

use super::CliError;
use crate::client::{self, Client, ClientError};
use crate::locations::{Locations, Overrides};

/// Set to `1` to never start zend (as for zen-shim).
pub const NO_AUTOSTART_ENV: &str = zen_proto::client::NO_AUTOSTART_ENV;

/// Which daemon a command talks to, and whether it may start one.
#[derive(Debug, Clone)]
pub struct Target {
    pub socket: Socket,
    /// Passed on to a daemon this command starts, so it uses the same directories.
    pub overrides: Overrides,
    pub autostart: bool,
}

impl Target {
    /// The daemon of these directories; auto-start unless `ZEN_NO_AUTOSTART=1`.
    pub fn new(overrides: Overrides) -> Result<Self, CliError> {
        let socket = Locations::resolve(&overrides)?.socket();
        Ok(Self {
            socket,
            overrides,
            autostart: zen_proto::client::autostart_allowed(),
        })
    }

    /// Connects to the running zend; never starts one.
    pub async fn connect(&self) -> Result<Client, CliError> {
        Ok(client::connect(&self.socket).await?)
    }

    /// Connects, starting zend first when nothing answers and that is allowed.
    pub async fn connect_or_start(&self) -> Result<Client, CliError> {
        match client::connect(&self.socket).await {
            Ok(client) => return Ok(client),
            Err(ClientError::NotRunning(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let launcher = self.autostart.then_some(|| self.launcher());
        let stream = zen_proto::client::connect_or_start(&self.socket, Mode::First, launcher)
            .await
            .map_err(CliError::NotRunning)?;
        zen_proto::client::handshake(stream)
            .await
            .map_err(CliError::NotRunning)
    }

    /// This executable, with the directories this command was given.
    fn launcher(&self) -> Result<Launcher, String> {
        let program = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to start zend: {e}"))?;
        let overrides = &self.overrides;
        let mut extra_args = Vec::new();
        for (flag, value) in [
            ("--home", &overrides.home),
            ("--config-dir", &overrides.config_dir),
            ("--data-dir", &overrides.data_dir),
            ("--state-dir", &overrides.state_dir),
            ("--runtime-dir", &overrides.runtime_dir),
        ] {
            if let Some(value) = value {
                extra_args.push(flag.into());
                extra_args.push(value.into());
            }
        }
        Ok(Launcher {
            program,
            extra_args,
        })
    }
}
