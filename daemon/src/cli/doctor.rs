//! `zend doctor [--json] [--live]`: what is wrong with this zen, if anything.
//!
//! Checks, in order: the daemon (is one running, its pid, socket 0600 in a 0700
//! directory, the lock file, stale sockets), version skew (this binary, the
//! daemon, each live session's shim), the configuration files (models.yaml,
//! server.yaml, limits.yaml, tools/*.yaml with plugin problems, each with
//! file:line), and per provider the key variables that are set — by name, never
//! by value. With `--live`, one 1-token completion per configured provider.
//!
//! Keys live with the daemon, so when one runs the provider checks (and live
//! calls) are its answer to the `doctor` query: they reflect the environment
//! zend runs with, not this shell's. With no daemon the CLI checks in-process
//! and says that nothing runs. Live calls go through `Providers` (the one place
//! model calls go through) but not through a tool, so they are not in the ledger.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use zen_proto::v1::StatusRequest;

use super::connect::Target;
use super::{CliError, EXIT_ERROR, EXIT_OK, Style, process_alive, query};
use crate::client::ClientError;
use crate::locations::{Locations, Overrides};
use crate::providers::checks::{ProviderCheck, ProviderChecks, provider_checks};
use crate::providers::{Env, ModelsConfig, Providers};

/// The whole report (`zend doctor --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// This `zend` binary's version.
    pub cli_version: String,
    pub daemon: DaemonCheck,
    pub config_dir: PathBuf,
    pub config_files: Vec<FileCheck>,
    /// Problems with `tools/*.yaml` (plugins and built-in overrides), with file:line.
    pub tool_problems: Vec<String>,
    /// `"daemon"` when the running zend answered the provider checks, else `"cli"`.
    pub providers_checked_by: String,
    pub providers: Vec<ProviderCheck>,
    /// What needs fixing; `doctor` exits 1 when this is not empty.
    pub problems: Vec<String>,
    /// Worth knowing, not broken.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DaemonCheck {
    pub running: bool,
    pub pid: Option<u32>,
    pub version: Option<String>,
    pub uptime_ms: Option<u64>,
    pub socket: PathBuf,
    /// The socket file's mode (octal), when it exists; 600 expected.
    pub socket_mode: Option<String>,
    pub socket_dir_mode: Option<String>,
    pub lock_file: PathBuf,
    /// The pid recorded in the lock file, and whether that process is alive.
    pub lock_pid: Option<u32>,
    pub lock_pid_alive: bool,
    pub data_dir: PathBuf,
    pub sessions: Vec<SessionCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionCheck {
    pub id: String,
    pub client: String,
    pub shim_version: String,
    /// The shim's version differs from the daemon's.
    pub skew: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCheck {
    pub file: String,
    /// The user's file exists (else the built-in defaults apply).
    pub present: bool,
    pub ok: bool,
    #[serde(default)]
    pub problem: Option<String>,
}

/// Runs the checks and prints the report; exit 0 when nothing needs fixing, 1 otherwise.
pub async fn run(
    target: &Target,
    overrides: &Overrides,
    live: bool,
    as_json: bool,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let report = collect(target, overrides, live).await?;
    if as_json {
        let value = serde_json::to_value(&report).map_err(std::io::Error::other)?;
        writeln!(out, "{value:#}")?;
    } else {
        write!(out, "{}", render(&report, style))?;
    }
    Ok(if report.problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Gathers the report: from the running daemon where it knows better, else in-process.
pub async fn collect(
    target: &Target,
    overrides: &Overrides,
    live: bool,
) -> Result<Report, CliError> {
    let locations = Locations::resolve(overrides)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut daemon = DaemonCheck {
        socket: target.socket.path.clone(),
        lock_file: locations.lock_path(),
        data_dir: locations.data_dir.clone(),
        ..DaemonCheck::default()
    };
    let mut config_dir = locations.config_dir.clone();
    let mut remote_checks = None;
    let mut config_error = None;
    match target.connect().await {
        Ok(mut client) => {
            let status = client
                .status(StatusRequest {})
                .await
                .map_err(|s| ClientError::Rpc(s.message().to_owned()))?
                .into_inner();
            daemon.running = true;
            daemon.pid = Some(status.pid);
            daemon.uptime_ms = Some(status.uptime_ms);
            if !status.socket_path.is_empty() {
                daemon.socket = PathBuf::from(&status.socket_path);
            }
            if let Some(paths) = &status.paths {
                config_dir = PathBuf::from(&paths.config_dir);
                daemon.data_dir = PathBuf::from(&paths.data_dir);
                daemon.lock_file = Path::new(&paths.runtime_dir).join("zend.lock");
            }
            if status.daemon_version != zen_proto::VERSION {
                warnings.push(format!(
                    "the running zend is version {} but this zend binary is {}; `zend stop` so the next start runs the new one",
                    status.daemon_version,
                    zen_proto::VERSION
                ));
            }
            for session in &status.sessions {
                let skew = !session.shim_version.is_empty()
                    && session.shim_version != status.daemon_version;
                if skew {
                    warnings.push(format!(
                        "session {} ({}) runs zen-shim {} against zend {}; restart that MCP client after upgrading",
                        session.id,
                        if session.client_name.is_empty() { "unknown client" } else { &session.client_name },
                        session.shim_version,
                        status.daemon_version
                    ));
                }
                if !session.keys_missing.is_empty() {
                    warnings.push(format!(
                        "session {} ({}): its MCP client sets {} for zen, but zend does not have {} \
                         (a zend started by a shim gets a clean environment; keys come from zen's \
                         .env); run `zend keys import`",
                        session.id,
                        if session.client_name.is_empty() { "unknown client" } else { &session.client_name },
                        session.keys_missing.join(", "),
                        if session.keys_missing.len() > 1 { "them" } else { "it" },
                    ));
                }
                daemon.sessions.push(SessionCheck {
                    id: session.id.clone(),
                    client: session.client_name.clone(),
                    shim_version: session.shim_version.clone(),
                    skew,
                });
            }
            if !status.config_error.is_empty() {
                config_error = Some(status.config_error.clone());
            }
            daemon.version = Some(status.daemon_version);
            match query::request(&mut client, query::DOCTOR, json!({ "live": live })).await {
                Ok(answer) => match serde_json::from_value::<ProviderChecks>(answer.json) {
                    Ok(checks) => remote_checks = Some(checks),
                    Err(e) => warnings.push(format!(
                        "the running zend sent provider checks this binary cannot read ({e}); checked here instead"
                    )),
                },
                Err(e) => warnings.push(format!(
                    "the running zend cannot answer doctor queries ({e}); providers checked here instead, with this shell's environment"
                )),
            }
        }
        Err(CliError::Client(ClientError::NotRunning(_))) => {}
        // The socket's directory or the server is not safe to talk to: say why.
        Err(CliError::Client(ClientError::Connect(reason))) => problems.push(reason),
        Err(e) => return Err(e),
    }

    let chosen = if daemon.socket == target.socket.path {
        target.socket.chosen
    } else {
        zen_proto::paths::Chosen::ByUser
    };
    check_runtime(&mut daemon, chosen, &mut problems, &mut warnings);

    let mut config_files = Vec::new();
    let server = crate::config::ServerConfig::load(&config_dir);
    config_files.push(file_check(
        &config_dir,
        "server.yaml",
        server.as_ref().err(),
    ));
    let limits = crate::config::LimitsConfig::load(&config_dir);
    config_files.push(file_check(
        &config_dir,
        "limits.yaml",
        limits.as_ref().err(),
    ));
    let models = ModelsConfig::load(Some(&config_dir));
    config_files.push(file_check(
        &config_dir,
        "models.yaml",
        models.as_ref().err(),
    ));
    for file in &config_files {
        if let Some(problem) = &file.problem {
            problems.push(problem.clone());
        }
    }
    if let Some(error) = &config_error {
        problems.push(format!(
            "the running zend could not reload its configuration and still runs the previous one: {error}"
        ));
    }
    let env = Env::load(Some(&config_dir));
    let disabled = server
        .as_ref()
        .map(|server| crate::tools::settings::disabled_tools(server, &env))
        .unwrap_or_default();
    let (_, tool_problems) = crate::tools::Registry::load(&config_dir, &disabled);
    problems.extend(tool_problems.iter().cloned());

    let (providers_checked_by, checks) = match remote_checks {
        Some(checks) => ("daemon", checks),
        None => {
            let providers = Providers::new(models.unwrap_or_default(), &env)
                .or_else(|_| Providers::load(None, &env));
            let checks = match providers {
                Ok(providers) => provider_checks(&config_dir, &env, &providers, live).await,
                Err(e) => {
                    problems.push(format!("cannot set up the providers: {e}"));
                    ProviderChecks::default()
                }
            };
            ("cli", checks)
        }
    };
    if let Some(warning) = shell_keys_warning(&checks, providers_checked_by, &config_dir) {
        warnings.push(warning);
    }
    if providers_checked_by == "daemon"
        && let Some(warning) = environment_keys_warning(&checks, &daemon.socket)
    {
        warnings.push(warning);
    }
    for check in &checks.providers {
        if let Some(pending) = &check.pending {
            warnings.push(format!("{}: {pending}", check.name));
        }
    }
    if !checks.providers.iter().any(|p| p.configured) {
        problems.push(
            "no provider is configured: set an API key (e.g. OPENAI_API_KEY) in zen's .env or zend's environment"
                .into(),
        );
    }
    for check in &checks.providers {
        if let Some(live) = &check.live
            && !live.ok
        {
            problems.push(format!(
                "{}: live call failed ({}): {}",
                check.name,
                live.error_kind.as_deref().unwrap_or("error"),
                live.error.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(Report {
        cli_version: zen_proto::VERSION.to_owned(),
        daemon,
        config_dir,
        config_files,
        tool_problems,
        providers_checked_by: providers_checked_by.to_owned(),
        providers: checks.providers,
        problems,
        warnings,
    })
}

/// Key variables this shell sets that zend lacks (checked by the daemon) or
/// that zen's `.env` lacks (no daemon: what a zend a shim starts would get).
fn shell_keys_warning(
    checks: &ProviderChecks,
    checked_by: &str,
    config_dir: &Path,
) -> Option<String> {
    let mut shell: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| zen_proto::meta::is_key_variable(name))
        .collect();
    shell.sort();
    let missing: Vec<String> = if checked_by == "daemon" {
        let known = checks.providers.iter().flat_map(|p| p.key_vars.iter());
        let set: Vec<&String> = checks
            .providers
            .iter()
            .flat_map(|p| p.key_vars_set.iter())
            .collect();
        let known: Vec<&String> = known.collect();
        shell
            .into_iter()
            .filter(|name| known.contains(&name) && !set.contains(&name))
            .collect()
    } else {
        let dotenv = std::fs::read_to_string(config_dir.join(".env")).unwrap_or_default();
        let in_file: Vec<String> = crate::providers::parse_dotenv(&dotenv)
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, _)| name)
            .collect();
        shell
            .into_iter()
            .filter(|name| !in_file.contains(name))
            .collect()
    };
    if missing.is_empty() {
        return None;
    }
    let whom = if checked_by == "daemon" {
        "the running zend does not have"
    } else {
        "zen's .env does not set, so a zend started by a shim will not have"
    };
    Some(format!(
        "this shell sets {}, which {whom} (keys come from zen's .env, not from whoever starts zend); \
         run `zend keys import` to copy {} there",
        missing.join(", "),
        if missing.len() > 1 { "them" } else { "it" },
    ))
}

/// Keys the running zend has from its own environment (a service's unit or
/// plist, the shell that started it) rather than zen's `.env`: a reload does
/// not change them; only a restart does, and this says which command.
fn environment_keys_warning(checks: &ProviderChecks, socket: &Path) -> Option<String> {
    let names: Vec<&str> = checks
        .providers
        .iter()
        .filter(|p| p.key_source.as_deref() == Some(crate::providers::checks::ENVIRONMENT))
        .filter_map(|p| p.key_vars_set.first().map(String::as_str))
        .collect();
    if names.is_empty() {
        return None;
    }
    let managed = zen_proto::paths::managed_marker(socket).exists();
    let restart = if managed {
        format!(
            "restart the service: `{}`",
            crate::service::restart_command(crate::service::Manager::native())
        )
    } else {
        "restart zend: `zend stop` (the next zen-shim or `zend` command starts it again)".to_owned()
    };
    Some(format!(
        "{} {} set in zend's own environment{}, not in zen's .env: editing .env or `zend reload` \
         does not change {}; to change or remove {}, {restart}",
        names.join(", "),
        if names.len() > 1 { "are" } else { "is" },
        if managed { " (the service's)" } else { "" },
        if names.len() > 1 { "them" } else { "it" },
        if names.len() > 1 { "them" } else { "it" },
    ))
}

fn file_check(config_dir: &Path, name: &str, error: Option<&impl ToString>) -> FileCheck {
    FileCheck {
        file: name.to_owned(),
        present: config_dir.join(name).is_file(),
        ok: error.is_none(),
        problem: error.map(ToString::to_string),
    }
}

/// Socket, its directory, the lock file: modes, owners, stale leftovers.
/// `chosen`: who chose the socket's directory (zen's own must be 0700, one the
/// user named only closed to other users' writes; see `zen_proto::paths::check_dir`).
fn check_runtime(
    daemon: &mut DaemonCheck,
    chosen: zen_proto::paths::Chosen,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let uid = zen_proto::paths::current_uid();
    if let Some(dir) = daemon.socket.parent()
        && let Ok(meta) = std::fs::symlink_metadata(dir)
    {
        daemon.socket_dir_mode = Some(format!("{:o}", meta.mode() & 0o7777));
        if let Err(e) = zen_proto::paths::check_dir(dir, chosen) {
            let problem = format!("the socket's directory: {e}");
            // A refused connection said it already.
            if !problems.iter().any(|p| p.contains(&e.to_string())) {
                problems.push(problem);
            }
        }
    }
    match std::fs::symlink_metadata(&daemon.socket) {
        Ok(meta) => {
            daemon.socket_mode = Some(format!("{:o}", meta.mode() & 0o7777));
            if !meta.file_type().is_socket() {
                problems.push(format!(
                    "{} is not a socket; remove it",
                    daemon.socket.display()
                ));
            } else if meta.mode() & 0o077 != 0 || meta.uid() != uid {
                problems.push(format!(
                    "the socket {} must be yours with mode 600 (it is {:o})",
                    daemon.socket.display(),
                    meta.mode() & 0o7777
                ));
            } else if !daemon.running {
                warnings.push(format!(
                    "{} is left from a zend that did not exit cleanly; the next start removes it",
                    daemon.socket.display()
                ));
            }
        }
        Err(_) if daemon.running => {
            // Handed over by a service manager under another name, or ZEN_SOCKET differs.
        }
        Err(_) => {}
    }
    // Only a lock file of ours names a zend: another user's could name any pid.
    daemon.lock_pid = std::fs::symlink_metadata(&daemon.lock_file)
        .is_ok_and(|meta| meta.is_file() && meta.uid() == uid)
        .then(|| std::fs::read_to_string(&daemon.lock_file).ok())
        .flatten()
        .and_then(|text| text.trim().parse().ok());
    daemon.lock_pid_alive = daemon.lock_pid.is_some_and(process_alive);
    if !daemon.running
        && daemon.lock_pid_alive
        && let Some(pid) = daemon.lock_pid
    {
        problems.push(format!(
            "pid {pid} is recorded in {} and alive, but nothing answers at {}: a hung zend? (`kill {pid}`)",
            daemon.lock_file.display(),
            daemon.socket.display()
        ));
    }
}

/// One provider's line, saying one thing: configured (and from where), set
/// in `.env` but not loaded yet, or not configured (and what to set).
/// `by_zend`: the running zend checked (else this shell's environment was used).
fn provider_row(p: &ProviderCheck, by_zend: bool, style: Style) -> String {
    let name = format!("{:<12}", p.name);
    if let Some(pending) = &p.pending
        && !p.configured
    {
        return format!("{}  {name}{pending}", style.yellow("!!"));
    }
    if p.configured {
        let from = match (p.key_vars_set.first(), p.key_source.as_deref()) {
            (Some(var), Some(crate::providers::checks::ENVIRONMENT)) => format!(
                "configured: {var} from {}",
                if by_zend {
                    "zend's environment"
                } else {
                    "this shell's environment"
                }
            ),
            (Some(var), _) => format!("configured: {var} from zen's .env"),
            (None, _) => "configured (no key needed)".to_owned(),
        };
        let pending = p
            .pending
            .as_deref()
            .map(|pending| format!("; {pending}"))
            .unwrap_or_default();
        return format!("{}  {name}{from}{pending}", style.green("ok"));
    }
    let reason = p.reason.as_deref().unwrap_or("no key or endpoint");
    format!(
        "--  {name}{}",
        style.dim(&format!("not configured: {reason}"))
    )
}

/// The report for people.
pub fn render(report: &Report, style: Style) -> String {
    use std::fmt::Write as _;
    let ok = style.green("ok");
    let bad = style.red("FAIL");
    let mut text = String::new();
    let d = &report.daemon;
    let _ = writeln!(text, "{}", style.bold("Daemon"));
    if d.running {
        let _ = writeln!(
            text,
            "  {ok}  zend {} running, pid {}",
            d.version.as_deref().unwrap_or("?"),
            d.pid.map_or("?".to_owned(), |p| p.to_string())
        );
    } else {
        let _ = writeln!(
            text,
            "  --  zend is not running (the next zen-shim or `zend` command starts it)"
        );
    }
    let _ = writeln!(
        text,
        "      socket {} (mode {}, directory mode {})",
        d.socket.display(),
        d.socket_mode.as_deref().unwrap_or("-"),
        d.socket_dir_mode.as_deref().unwrap_or("-")
    );
    let _ = writeln!(text, "      store  {}", d.data_dir.display());
    let _ = writeln!(
        text,
        "      zend binary {}; {} live session{}",
        report.cli_version,
        d.sessions.len(),
        if d.sessions.len() == 1 { "" } else { "s" }
    );

    let _ = writeln!(
        text,
        "\n{}  {}",
        style.bold("Configuration"),
        style.dim(&report.config_dir.display().to_string())
    );
    for file in &report.config_files {
        let state = match (&file.problem, file.present) {
            (Some(problem), _) => format!("{bad}  {problem}"),
            (None, true) => format!("{ok}  {}", file.file),
            (None, false) => format!("{ok}  {} {}", file.file, style.dim("(built-in defaults)")),
        };
        let _ = writeln!(text, "  {state}");
    }
    if report.tool_problems.is_empty() {
        let _ = writeln!(text, "  {ok}  tools/");
    }
    for problem in &report.tool_problems {
        let _ = writeln!(text, "  {bad}  {problem}");
    }

    let _ = writeln!(
        text,
        "\n{}  {}",
        style.bold("Providers"),
        style.dim(&format!(
            "(as {} sees them; key values are never shown)",
            report
                .providers_checked_by
                .replace("cli", "this shell")
                .replace("daemon", "zend")
        ))
    );
    for p in &report.providers {
        let by_zend = report.providers_checked_by == "daemon";
        let _ = writeln!(text, "  {}", provider_row(p, by_zend, style));
        if let Some(live) = &p.live {
            let model = live.model.as_deref().unwrap_or("-");
            if live.ok {
                let _ = writeln!(text, "        live: {ok} {model} in {} ms", live.latency_ms);
            } else {
                let _ = writeln!(
                    text,
                    "        live: {bad} {model}: {} ({})",
                    live.error.as_deref().unwrap_or(""),
                    live.error_kind.as_deref().unwrap_or("error")
                );
            }
        }
    }

    if !report.warnings.is_empty() {
        let _ = writeln!(text, "\n{}", style.bold("Warnings"));
        for warning in &report.warnings {
            let _ = writeln!(text, "  {} {warning}", style.yellow("!"));
        }
    }
    if report.problems.is_empty() {
        let _ = writeln!(text, "\n{}", style.green("No problems found."));
    } else {
        let _ = writeln!(
            text,
            "\n{}",
            style.red(&format!("{} problem(s):", report.problems.len()))
        );
        for problem in &report.problems {
            let _ = writeln!(text, "  - {problem}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(configured: bool, set: &[&str], source: Option<&str>) -> ProviderCheck {
        ProviderCheck {
            name: "gemini".into(),
            configured,
            reason: (!configured).then(|| "no API key: set GEMINI_API_KEY".into()),
            key_vars: vec!["GEMINI_API_KEY".into(), "GOOGLE_API_KEY".into()],
            key_vars_set: set.iter().map(|s| (*s).to_owned()).collect(),
            key_source: source.map(str::to_owned),
            pending: None,
            live: None,
        }
    }

    #[test]
    fn each_provider_row_says_one_thing() {
        let style = Style::plain();
        assert_eq!(
            provider_row(&check(true, &["GEMINI_API_KEY"], Some(".env")), true, style),
            "ok  gemini      configured: GEMINI_API_KEY from zen's .env"
        );
        assert_eq!(
            provider_row(
                &check(true, &["GEMINI_API_KEY"], Some("environment")),
                true,
                style
            ),
            "ok  gemini      configured: GEMINI_API_KEY from zend's environment"
        );
        assert_eq!(
            provider_row(&check(false, &[], None), true, style),
            "--  gemini      not configured: no API key: set GEMINI_API_KEY"
        );
        // The case that used to read "key in GEMINI_API_KEYno API key: set GEMINI_API_KEY".
        let mut pending = check(false, &[], None);
        let mut checks = ProviderChecks {
            providers: vec![pending.clone()],
        };
        let files = Env::from_map([("GEMINI_API_KEY", "g-key-123456")]);
        checks.compare_with_files(&Env::default(), &files, None);
        pending.pending = checks.providers[0].pending.clone();
        let row = provider_row(&pending, true, style);
        assert!(
            row.starts_with("!!  gemini      GEMINI_API_KEY set in .env but not loaded yet"),
            "{row}"
        );
        assert!(!row.contains("not configured"), "{row}");
    }

    #[test]
    fn keys_changed_or_removed_in_dotenv_are_pending_until_loaded() {
        let loaded = Env::from_map([("GEMINI_API_KEY", "old-key-123456")]);
        let mut checks = ProviderChecks {
            providers: vec![check(true, &["GEMINI_API_KEY"], Some(".env"))],
        };
        checks.compare_with_files(&loaded, &loaded.clone(), None);
        assert_eq!(checks.providers[0].pending, None);

        let changed = Env::from_map([("GEMINI_API_KEY", "new-key-123456")]);
        checks.compare_with_files(&loaded, &changed, Some("models.yaml:3:1: bad"));
        let pending = checks.providers[0].pending.clone().unwrap();
        assert!(pending.contains("changed in .env"), "{pending}");
        assert!(pending.contains("models.yaml:3"), "{pending}");
        assert!(!pending.contains("key-123456"), "no value shown: {pending}");

        checks.compare_with_files(&loaded, &Env::default(), None);
        let pending = checks.providers[0].pending.clone().unwrap();
        assert!(pending.contains("removed from .env"), "{pending}");
    }
}
