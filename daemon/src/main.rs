//! The `zend` binary: argument parsing and one call into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zend::locations::{Locations, Overrides};
use zend::server::{ServeOptions, ServeOutcome};

#[derive(Parser)]
#[command(
    name = "zend",
    version,
    about = "zen's daemon: lets AI coding assistants consult other models over MCP"
)]
struct Cli {
    /// Put config, data, state and runtime directories under this one directory.
    #[arg(long, global = true, env = "ZEN_HOME")]
    home: Option<PathBuf>,
    /// Configuration directory (models.yaml, server.yaml, limits.yaml, tools/, .env).
    #[arg(long, global = true, env = "ZEN_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Data directory (the conversation and cost store).
    #[arg(long, global = true, env = "ZEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// State directory (logs).
    #[arg(long, global = true, env = "ZEN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Runtime directory (socket and lock file); shims find it only through ZEN_SOCKET.
    #[arg(long, global = true, env = "ZEN_RUNTIME_DIR")]
    runtime_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (what services and zen-shim run).
    Serve {
        /// Started by zen-shim: exit after the idle timeout with no sessions.
        #[arg(long, hide = true)]
        auto_started: bool,
        /// Seconds with no sessions before an auto-started zend exits (0 = never).
        #[arg(long)]
        idle_timeout: Option<u64>,
    },
    /// Show the running daemon: versions, paths, sessions, costs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the running daemon gracefully.
    Stop {
        /// Seconds live calls may take to finish.
        #[arg(long, default_value_t = 10)]
        deadline: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zend: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let overrides = Overrides {
        home: cli.home,
        config_dir: cli.config_dir,
        data_dir: cli.data_dir,
        state_dir: cli.state_dir,
        runtime_dir: cli.runtime_dir,
    };
    let mut stdout = std::io::stdout();
    match cli.command {
        Command::Serve {
            auto_started,
            idle_timeout,
        } => {
            let options = ServeOptions {
                overrides,
                auto_started,
                idle_timeout_secs: idle_timeout,
                log_to_stderr: !auto_started,
            };
            match zend::server::serve(options).await? {
                ServeOutcome::Stopped => Ok(0),
                ServeOutcome::AlreadyRunning { pid, socket } => {
                    let pid = pid
                        .map(|p| format!("pid {p}"))
                        .unwrap_or_else(|| "pid unknown".into());
                    eprintln!("zend is already running ({pid}) at {}", socket.display());
                    Ok(0)
                }
            }
        }
        Command::Status { json } => {
            let socket = Locations::resolve(&overrides)?.socket_path();
            Ok(zend::cli::status(&socket, json, &mut stdout)
                .await
                .context("zend status")?)
        }
        Command::Stop { deadline } => {
            let socket = Locations::resolve(&overrides)?.socket_path();
            Ok(
                zend::cli::stop(&socket, Duration::from_secs(deadline), &mut stdout)
                    .await
                    .context("zend stop")?,
            )
        }
    }
}
