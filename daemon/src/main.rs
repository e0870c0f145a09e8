//! The `zend` binary: argument parsing and one call into the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zend::cli::{self, ask, connect::Target};
use zend::locations::{Locations, Overrides};
use zend::mcp::http::HttpOptions;
use zend::register::{Client, RegisterSpec};
use zend::server::{ServeOptions, ServeOutcome};
use zend::service::{self, Manager, ServiceSpec};

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
        /// Run by a service manager: shims wait for this zend rather than start one.
        #[arg(long)]
        service: bool,
        /// Also serve MCP over streamable HTTP at http://ADDR/mcp (bearer token: `zend http-token`).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Allow --http on a non-loopback address, and any Host header (needs --http-cert and --http-key).
        #[arg(long, requires = "http", requires_all = ["http_cert", "http_key"])]
        http_allow_remote: bool,
        /// Serve --http over TLS with this certificate chain (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["http", "http_key"])]
        http_cert: Option<PathBuf>,
        /// The private key of --http-cert (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["http", "http_cert"])]
        http_key: Option<PathBuf>,
        /// A browser Origin to accept besides loopback ones (repeatable).
        #[arg(long, value_name = "ORIGIN", requires = "http")]
        http_allow_origin: Vec<String>,
        /// A Host name to accept besides loopback ones (repeatable).
        #[arg(long, value_name = "HOST", requires = "http")]
        http_allow_host: Vec<String>,
    },
    /// Print the bearer token of the HTTP endpoint (created on first use).
    HttpToken {
        /// Replace it with a new one (a running zend takes it at once; the old one stops working).
        #[arg(long)]
        rotate: bool,
    },
    /// Run zend as a systemd user service (Linux) or a launchd agent (macOS).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Add zen to an MCP client's configuration (other servers and keys are kept).
    Register {
        #[arg(value_enum)]
        client: Client,
        /// Show the command or the resulting config file without changing anything.
        #[arg(long)]
        print: bool,
        /// The zen-shim to register (default: beside this zend, else on PATH).
        #[arg(long)]
        shim: Option<PathBuf>,
        /// Gemini CLI: mark zen trusted ("trust": true), so headless runs show its tools.
        #[arg(long)]
        trust: bool,
    },
    /// Print the end of zend's newest log file.
    Logs {
        /// Keep printing new lines (across the daily rotation) until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many lines to print first.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
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
    /// Make the running daemon read its configuration files again (it also does
    /// when they change); exits 1, naming file and line, when they do not load.
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// List the models zend can call and the providers still to configure.
    Models {
        #[arg(long)]
        json: bool,
    },
    /// Find earlier conversations (`zend threads show ID` reads one).
    Threads {
        #[command(subcommand)]
        action: Option<ThreadsAction>,
        #[arg(long)]
        json: bool,
        /// Only threads started in this directory or below it.
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Only threads a turn of which came from this tool.
        #[arg(long, value_name = "T")]
        tool: Option<String>,
        /// Only threads a model whose name contains this answered.
        #[arg(long, value_name = "M")]
        model: Option<String>,
        /// Only threads whose title or a turn contains this text.
        #[arg(long, value_name = "Q")]
        text: Option<String>,
        /// At most this many threads (newest first).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Ask a model (the `chat` tool): the answer on stdout, the continuation id on stderr.
    Ask {
        /// The question; `-` reads it from stdin.
        prompt: String,
        /// Model name or alias (default: the tool's, else auto).
        #[arg(long, short)]
        model: Option<String>,
        /// Continue an earlier conversation (a continuation_id).
        #[arg(long = "continue", value_name = "ID")]
        continuation_id: Option<String>,
        /// A file or directory to include (repeatable; relative to here).
        #[arg(long = "file", short = 'f', value_name = "F")]
        files: Vec<PathBuf>,
        /// Another model tool to call instead of chat (thinkdeep, a plugin).
        #[arg(long, default_value = "chat")]
        tool: String,
        /// Print one JSON object: answer, continuation_id, footer, is_error.
        #[arg(long)]
        json: bool,
    },
    /// Ask several models at once (the `consensus` tool), each with an optional stance.
    Consensus {
        /// The proposal or question; `-` reads it from stdin.
        prompt: String,
        /// A participant: MODEL or MODEL:for|against|neutral (repeatable).
        #[arg(long = "model", short, value_name = "M[:STANCE]", required = true)]
        models: Vec<String>,
        /// Continue an earlier conversation (a continuation_id).
        #[arg(long = "continue", value_name = "ID")]
        continuation_id: Option<String>,
        /// A file or directory to include (repeatable; relative to here).
        #[arg(long = "file", short = 'f', value_name = "F")]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time login link to the dashboard zend serves on loopback.
    Dashboard {
        /// Also open it in the desktop's browser.
        #[arg(long)]
        open: bool,
    },
    /// Print zend's version; `--check` also asks the release feed whether a newer one is out.
    Version {
        /// Ask the release feed (the only network use of this command).
        #[arg(long)]
        check: bool,
    },
    /// Check keys, configuration, the daemon and versions; `--live` calls each provider once.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Also make a 1-token call per configured provider.
        #[arg(long)]
        live: bool,
    },
    /// Provider keys in zen's .env.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Copy provider keys from MCP client configs (zen's entry) and this shell into
    /// zen's .env (0600; existing ones kept; only names are printed).
    Import,
}

#[derive(Subcommand)]
enum ThreadsAction {
    /// Show one thread with all its turns.
    Show {
        /// The thread's id (a continuation_id).
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Write the unit files (or LaunchAgent) and enable them.
    Install {
        /// Show the files and commands without writing or running anything.
        #[arg(long)]
        print: bool,
        #[arg(long, value_enum, default_value_t = Manager::native())]
        manager: Manager,
    },
    /// Disable the service and remove its files.
    Uninstall {
        /// Show what would be removed without doing it.
        #[arg(long)]
        print: bool,
        #[arg(long, value_enum, default_value_t = Manager::native())]
        manager: Manager,
    },
    /// Show whether the service is installed and what the manager says of it.
    Status {
        #[arg(long, value_enum, default_value_t = Manager::native())]
        manager: Manager,
    },
}

/// How many async worker threads zend runs: `ZEN_WORKER_THREADS`, else 1.
///
/// One is the default because a call is a chain of short hops between tasks
/// (the gRPC connection, rmcp's session loop, the tool, the provider's HTTP
/// connection): with a second worker, every hop that finds it parked wakes it
/// (a futex wake and two context switches) only for it to find the work gone,
/// which cost more CPU per call than the work itself and added the tails.
/// Blocking work (the store's flush, the sweeper) runs on tokio's blocking
/// pool either way; what one worker serialises is only the async part.
fn worker_threads() -> usize {
    std::env::var("ZEN_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
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
    let mut stderr = std::io::stderr();
    let style = cli::Style::for_stdout();
    match cli.command {
        Command::Serve {
            auto_started,
            idle_timeout,
            service,
            http,
            http_allow_remote,
            http_allow_origin,
            http_allow_host,
            http_cert,
            http_key,
        } => {
            let options = ServeOptions {
                overrides,
                auto_started,
                idle_timeout_secs: idle_timeout,
                // A service manager's stderr file is never rotated: the log file only.
                log_to_stderr: !auto_started && !service,
                service,
                http: http.map(|addr| HttpOptions {
                    addr,
                    allow_remote: http_allow_remote,
                    allowed_origins: http_allow_origin,
                    allowed_hosts: http_allow_host,
                    tls: http_cert
                        .zip(http_key)
                        .map(|(cert, key)| zend::mcp::http::TlsFiles { cert, key }),
                }),
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
        Command::Service { action } => {
            let locations = Locations::resolve(&overrides)?;
            let spec = ServiceSpec::for_this_user(&locations, &overrides)?;
            let runner = zend::service::SystemRunner;
            let code = match action {
                ServiceAction::Install { print, manager } => {
                    if !print {
                        // An auto-started zend would hold the socket and the lock.
                        zend::cli::stop(&locations.socket(), Duration::from_secs(10), &mut stdout)
                            .await
                            .context("stopping the running zend")?;
                    }
                    service::install(&service::plan(manager, &spec), print, &runner, &mut stdout)
                }
                ServiceAction::Uninstall { print, manager } => {
                    service::uninstall(&service::plan(manager, &spec), print, &runner, &mut stdout)
                }
                ServiceAction::Status { manager } => {
                    service::status(&service::plan(manager, &spec), &runner, &mut stdout)
                }
            };
            Ok(code.context("zend service")?)
        }
        Command::Register {
            client,
            print,
            shim,
            trust,
        } => {
            let socket = std::env::var_os(zen_proto::paths::SOCKET_ENV)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    let dir = overrides.runtime_dir.as_ref()?;
                    Some(dir.join(zen_proto::paths::SOCKET_NAME))
                });
            let locations = zend::register::LocationEnv {
                home: overrides.home.clone(),
                config_dir: overrides.config_dir.clone(),
                data_dir: overrides.data_dir.clone(),
                state_dir: overrides.state_dir.clone(),
                runtime_dir: overrides.runtime_dir.clone(),
                socket,
            };
            let mut spec = RegisterSpec::for_this_user(shim)
                .context("zend register")?
                .with_locations(&locations);
            spec.trust = trust;
            // Clients that time tool calls out must wait for the slowest model configured.
            let config_dir = Locations::resolve(&overrides)?.config_dir;
            let models =
                zend::providers::ModelsConfig::load(Some(&config_dir)).context("zend register")?;
            spec.tool_timeout_secs =
                zend::register::tool_timeout_secs(models.longest_timeout_secs());
            let runner = zend::service::SystemRunner;
            Ok(
                zend::register::register(client, &spec, print, &runner, &mut stdout)
                    .context("zend register")?,
            )
        }
        Command::Logs { follow, lines } => {
            let locations = Locations::resolve(&overrides)?;
            let stop = tokio_util::sync::CancellationToken::new();
            let on_interrupt = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                on_interrupt.cancel();
            });
            Ok(
                zend::logs::tail(&locations.state_dir, lines, follow, stop, &mut stdout)
                    .await
                    .context("zend logs")?,
            )
        }
        Command::HttpToken { rotate } => {
            let locations = Locations::resolve(&overrides)?;
            let token = if rotate {
                zend::mcp::http::rotate_token(&locations.config_dir)?
            } else {
                zend::mcp::http::load_or_create_token(&locations.config_dir)?
            };
            writeln!(stdout, "{}", token.reveal())?;
            Ok(0)
        }
        Command::Status { json } => {
            let socket = Locations::resolve(&overrides)?.socket();
            Ok(zend::cli::status(&socket, json, &mut stdout)
                .await
                .context("zend status")?)
        }
        Command::Stop { deadline } => {
            let socket = Locations::resolve(&overrides)?.socket();
            Ok(
                zend::cli::stop(&socket, Duration::from_secs(deadline), &mut stdout)
                    .await
                    .context("zend stop")?,
            )
        }
        Command::Reload { json } => {
            let outcome = match Target::new(overrides) {
                Ok(target) => cli::reload::run(&target, json, &mut stdout).await,
                Err(e) => Err(e),
            };
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Models { json } => {
            let outcome = match Target::new(overrides) {
                Ok(target) => cli::models::run(&target, json, style, &mut stdout).await,
                Err(e) => Err(e),
            };
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Threads {
            action,
            json,
            cwd,
            tool,
            model,
            text,
            limit,
        } => {
            let outcome = match (Target::new(overrides), action) {
                (Err(e), _) => Err(e),
                (
                    Ok(target),
                    Some(ThreadsAction::Show {
                        id,
                        json: show_json,
                    }),
                ) => cli::threads::show(&target, &id, json || show_json, style, &mut stdout).await,
                (Ok(target), None) => {
                    let options = cli::threads::ListOptions {
                        cwd,
                        tool,
                        model,
                        text,
                        limit: Some(limit),
                    };
                    cli::threads::list(&target, options, json, style, &mut stdout).await
                }
            };
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Ask {
            prompt,
            model,
            continuation_id,
            files,
            tool,
            json,
        } => {
            let outcome = async {
                let target = Target::new(overrides)?;
                let prompt = ask::read_prompt(&prompt)?;
                let call = ask::ToolCall::ask(&tool, prompt, model, continuation_id, &files)?;
                run_tool(&target, call, json, &mut stdout, &mut stderr).await
            }
            .await;
            Ok(cli::finish(outcome, &mut std::io::stderr()))
        }
        Command::Consensus {
            prompt,
            models,
            continuation_id,
            files,
            json,
        } => {
            let outcome = async {
                let target = Target::new(overrides)?;
                let prompt = ask::read_prompt(&prompt)?;
                let call = ask::ToolCall::consensus(prompt, &models, continuation_id, &files)?;
                run_tool(&target, call, json, &mut stdout, &mut stderr).await
            }
            .await;
            Ok(cli::finish(outcome, &mut std::io::stderr()))
        }
        Command::Dashboard { open } => {
            let outcome = match Target::new(overrides) {
                Ok(target) => cli::dashboard::run(&target, open, &mut stdout, &mut stderr).await,
                Err(e) => Err(e),
            };
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Version { check } => {
            let outcome = cli::version::run(check, &mut stdout).await;
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Keys {
            action: KeysAction::Import,
        } => {
            let locations = Locations::resolve(&overrides)?;
            let spec = RegisterSpec::config_paths().context("zend keys import")?;
            let shell = std::env::vars().filter(|(name, _)| zen_proto::meta::is_key_variable(name));
            let outcome = cli::keys::import(&locations.config_dir, &spec, shell, &mut stdout);
            Ok(cli::finish(outcome, &mut stderr))
        }
        Command::Doctor { json, live } => {
            let outcome = match Target::new(overrides.clone()) {
                Ok(target) => {
                    cli::doctor::run(&target, &overrides, live, json, style, &mut stdout).await
                }
                Err(e) => Err(e),
            };
            Ok(cli::finish(outcome, &mut stderr))
        }
    }
}

async fn run_tool(
    target: &Target,
    call: ask::ToolCall,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, cli::CliError> {
    let output = ask::Output {
        out,
        err,
        json,
        err_style: cli::Style::for_stderr(),
    };
    ask::run(target, call, output).await
}
