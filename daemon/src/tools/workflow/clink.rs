//! `clink`: runs another assistant's command-line tool (gemini, codex, claude)
//! as a sub-agent with a role prompt, and records the exchange on a thread
//! like any other turn.
//!
//! The CLIs and roles are data (`config/clink.yaml`). A CLI runs in its own
//! process group with a cleared environment (only the variables the YAML
//! names), a timeout and a cap on the answer kept; the whole group is killed
//! when it times out, the call is cancelled, or it exits, so nothing it started
//! outlives the call. The prompt goes in on stdin, never in argv (where every
//! local user can read it in `ps`). A CLI runs in the directory the call names,
//! else the session's own; a session without one (every HTTP session) gets a
//! fresh private directory, removed afterwards, never a shared one such as /tmp.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{ConfigError, load_layered, parse_yaml};
use crate::tools::args;
use crate::tools::config::ToolConfig;
use crate::tools::{
    CallContext, Tool, ToolError, ToolOutput, ToolSpec, engine, files, object_schema,
};

/// The built-in `config/clink.yaml`.
pub const CLINK_YAML: &str = include_str!("../../../../config/clink.yaml");
/// Bytes of a CLI's stderr kept for error messages (the end of it).
const STDERR_TAIL: usize = 2_000;

/// How a CLI takes its prompt: only on stdin (argv is visible to every local user).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PromptVia {
    #[default]
    Stdin,
}

/// One CLI clink can run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// A name looked up on PATH, or an absolute path.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables passed through besides the common `env` list (its credentials).
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub prompt: PromptVia,
    /// Overrides the common timeout.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// `clink.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClinkConfig {
    pub default_cli: String,
    pub timeout_secs: u64,
    pub max_output_chars: usize,
    /// The only variables every CLI gets from zend's environment.
    pub env: Vec<String>,
    pub clis: BTreeMap<String, CliConfig>,
    /// Role name → the prompt put before the request.
    pub roles: BTreeMap<String, String>,
}

impl ClinkConfig {
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        load_layered("clink.yaml", CLINK_YAML, config_dir)
    }

    /// The built-in `clink.yaml` alone.
    pub fn builtin() -> Result<Self, ConfigError> {
        let file = Path::new("<built-in>/config/clink.yaml");
        let value = parse_yaml(CLINK_YAML, file)?;
        serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
            file: file.to_path_buf(),
            message: e.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClinkError {
    #[error(
        "the `{cli}` CLI was not found (looked for `{command}` on PATH); install it, or set \
         clis.{cli}.command to its absolute path in {config}"
    )]
    NotFound {
        cli: String,
        command: String,
        config: String,
    },
    #[error("cannot start `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error(
        "`{cli}` did not finish within {secs} s and was stopped; ask for less, or raise timeout_secs \
         in {config}"
    )]
    TimedOut {
        cli: String,
        secs: u64,
        config: String,
    },
    #[error("`{cli}` failed ({status}) without an answer; its stderr ends with: {stderr}")]
    Failed {
        cli: String,
        status: String,
        stderr: String,
    },
}

/// What a CLI answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CliAnswer {
    pub text: String,
    /// Characters cut beyond `max_output_chars`.
    pub cut_chars: usize,
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
    pub elapsed: Duration,
}

/// Finds `command` on `path_var` (or checks it when it is a path).
fn locate(command: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let path = PathBuf::from(command);
        return (path.is_absolute() && executable(&path)).then_some(path);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(command))
        .find(|p| executable(p))
}

/// Kills every process in the group led by `pid` (a child spawned with `process_group(0)`);
/// the git runner uses it too.
pub(crate) fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| libc::pid_t::try_from(p).ok())
        .filter(|p| *p > 0)
    else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; a negative pid names the process
    // group the child leads (it was spawned with process_group(0)).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Reads `reader` to the end, keeping at most `cap` bytes (so the writer never blocks).
async fn read_capped(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    cap: usize,
    keep_tail: bool,
) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut dropped = 0;
    let mut buffer = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        kept.extend_from_slice(&buffer[..n]);
        if kept.len() > cap {
            let over = kept.len() - cap;
            dropped += over;
            if keep_tail {
                kept.drain(..over);
            } else {
                kept.truncate(cap);
            }
        }
    }
    (kept, dropped)
}

/// Runs one CLI with `prompt`; see the module docs for the guarantees.
pub async fn run_cli(
    name: &str,
    cli: &CliConfig,
    clink: &ClinkConfig,
    config_file: &str,
    prompt: &str,
    cwd: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<CliAnswer, ClinkError> {
    let program = locate(&cli.command, std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        ClinkError::NotFound {
            cli: name.to_owned(),
            command: cli.command.clone(),
            config: config_file.to_owned(),
        }
    })?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&cli.args)
        .env_clear()
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // zend's umask is 077; what the sub-agent writes in the repository is the user's.
    crate::hardening::user_umask(&mut command);
    for key in clink.env.iter().chain(&cli.env) {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.env("NO_COLOR", "1");
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| ClinkError::Spawn {
        command: program.display().to_string(),
        reason: e.to_string(),
    })?;
    let pid = child.id();
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let input = prompt.as_bytes().to_vec();
    // A UTF-8 character is at most 4 bytes: cap bytes at 4× the characters, cut characters later.
    let byte_cap = clink.max_output_chars.saturating_mul(4);
    let work = async {
        let write = async {
            if let Some(mut stdin) = stdin {
                // A CLI that exits without reading its input is not an error here.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            }
        };
        let read_out = async {
            match stdout {
                Some(out) => read_capped(out, byte_cap, false).await,
                None => (Vec::new(), 0),
            }
        };
        let read_err = async {
            match stderr {
                Some(err) => read_capped(err, STDERR_TAIL, true).await.0,
                None => Vec::new(),
            }
        };
        let ((), (out, dropped), err) = tokio::join!(write, read_out, read_err);
        let status = child.wait().await;
        (out, dropped, err, status)
    };
    let secs = cli.timeout_secs.unwrap_or(clink.timeout_secs);
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(Duration::from_secs(secs), work) => outcome,
        () = cancel.cancelled() => {
            kill_group(pid);
            return Err(ClinkError::Failed {
                cli: name.to_owned(),
                status: "cancelled by the client".into(),
                stderr: String::new(),
            });
        }
    };
    // Whatever happened, nothing the CLI started may outlive the call.
    kill_group(pid);
    let Ok((out, dropped_bytes, err, status)) = outcome else {
        return Err(ClinkError::TimedOut {
            cli: name.to_owned(),
            secs,
            config: config_file.to_owned(),
        });
    };
    let stderr_tail = String::from_utf8_lossy(&err).trim().to_owned();
    let exit_code = status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    let mut cut_chars = 0;
    if let Some((cut, _)) = text.char_indices().nth(clink.max_output_chars) {
        cut_chars = text[cut..].chars().count();
        text.truncate(cut);
    }
    if dropped_bytes > 0 {
        // Bytes beyond the read cap: counted as characters, close enough for a note.
        cut_chars += dropped_bytes;
    }
    let text = text.trim().to_owned();
    if exit_code != Some(0) && text.is_empty() {
        return Err(ClinkError::Failed {
            cli: name.to_owned(),
            status: match exit_code {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".into(),
            },
            stderr: if stderr_tail.is_empty() {
                "(nothing)".into()
            } else {
                stderr_tail
            },
        });
    }
    Ok(CliAnswer {
        text,
        cut_chars,
        exit_code,
        stderr_tail,
        elapsed: started.elapsed(),
    })
}

#[derive(Deserialize)]
struct Args {
    prompt: String,
    #[serde(default)]
    cli_name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    absolute_file_paths: Vec<String>,
    #[serde(default)]
    continuation_id: Option<String>,
    #[serde(default)]
    working_directory_absolute_path: Option<String>,
}

pub struct Clink {
    spec: ToolSpec,
    clink: ClinkConfig,
    /// Where the user overrides clink.yaml, for error messages.
    config_file: String,
}

impl Clink {
    /// A broken user `clink.yaml` is reported in `problems`; the built-in one is used then.
    pub fn new(config: &ToolConfig, config_dir: &Path, problems: &mut Vec<String>) -> Self {
        let clink = ClinkConfig::load(config_dir).unwrap_or_else(|error| {
            problems.push(format!("{error} (clink uses its built-in settings)"));
            ClinkConfig::builtin().unwrap_or_else(|error| {
                problems.push(format!("{error} (clink has no CLIs)"));
                ClinkConfig {
                    default_cli: String::new(),
                    timeout_secs: 600,
                    max_output_chars: 60_000,
                    env: Vec::new(),
                    clis: BTreeMap::new(),
                    roles: BTreeMap::new(),
                }
            })
        });
        let clis: Vec<&String> = clink.clis.keys().collect();
        let roles: Vec<&String> = clink.roles.keys().collect();
        let input_schema = object_schema(
            &[
                ("prompt", json!({"type": "string"})),
                ("cli_name", json!({"type": "string", "enum": clis})),
                ("role", json!({"type": "string", "enum": roles})),
                (
                    "absolute_file_paths",
                    json!({"type": "array", "items": {"type": "string"}}),
                ),
                ("continuation_id", json!({"type": "string"})),
                ("working_directory_absolute_path", json!({"type": "string"})),
            ],
            &["prompt"],
        );
        Self {
            spec: ToolSpec {
                name: "clink".into(),
                title: config.title.clone(),
                description: config.description.clone(),
                input_schema,
                read_only: false,
                open_world: true,
            },
            clink,
            config_file: config_dir.join("clink.yaml").display().to_string(),
        }
    }

    fn pick<'a, T>(
        &self,
        field: &str,
        map: &'a BTreeMap<String, T>,
        wanted: &str,
    ) -> Result<&'a T, ToolError> {
        map.get(wanted).ok_or_else(|| {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            ToolError::InvalidArguments(format!(
                "`{field}`: '{wanted}' is not configured; use one of {} (or add it to {})",
                known.join(", "),
                self.config_file
            ))
        })
    }
}

/// Where a CLI runs: a directory the user's session owns, or a private one made for the call.
enum WorkDir {
    Shared(PathBuf),
    Private(PrivateDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            Self::Shared(path) => path,
            Self::Private(dir) => &dir.0,
        }
    }
}

/// A 0700 directory under the temp dir, made for one call and removed (with
/// whatever the CLI left in it) when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = std::env::temp_dir();
        let mut last = None;
        // A fresh random name each try: a name another user took first is never reused.
        for _ in 0..16 {
            let path = parent.join(format!(
                "zen-clink-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no name left")))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove clink's private directory");
        }
    }
}

/// The working directory: the one given, else the session's, else a private one.
fn working_directory(
    files: &files::FilePolicy,
    given: Option<&str>,
    session_cwd: &Path,
) -> Result<WorkDir, ToolError> {
    if let Some(given) = given.map(str::trim).filter(|g| !g.is_empty()) {
        let path = files.check_path(given).map_err(|e| {
            ToolError::InvalidArguments(format!("`working_directory_absolute_path`: {e}"))
        })?;
        return if path.is_dir() {
            Ok(WorkDir::Shared(path))
        } else {
            Err(ToolError::InvalidArguments(format!(
                "`working_directory_absolute_path`: '{given}' is not a directory"
            )))
        };
    }
    // The root is nobody's project: a client started from / has no directory either.
    if session_cwd.is_absolute() && session_cwd != Path::new("/") && session_cwd.is_dir() {
        return Ok(WorkDir::Shared(session_cwd.to_path_buf()));
    }
    PrivateDir::new().map(WorkDir::Private).map_err(|e| {
        ToolError::Failed(format!(
            "cannot make a private directory for the sub-agent under {}: {e}; set TMPDIR to a writable directory",
            std::env::temp_dir().display()
        ))
    })
}

#[async_trait::async_trait]
impl Tool for Clink {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        let (prompt, paths) = args::take_prompt_file(
            &context.settings.files,
            &context.reads,
            &args.prompt,
            &args.absolute_file_paths,
        )?;
        if prompt.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`prompt` is empty: say what the sub-agent should do".into(),
            ));
        }
        if prompt.chars().count() > args::MAX_PROMPT_CHARS {
            return Ok(ToolOutput::text(args::resend_prompt_text(
                prompt.chars().count(),
            )));
        }
        let cli_name = args
            .cli_name
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(&self.clink.default_cli)
            .to_ascii_lowercase();
        let role_name = args
            .role
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("default")
            .to_ascii_lowercase();
        let cli = self.pick("cli_name", &self.clink.clis, &cli_name)?;
        let role = self.pick("role", &self.clink.roles, &role_name)?;
        for path in &paths {
            context
                .settings
                .files
                .check_path(path)
                .map_err(|e| ToolError::InvalidArguments(format!("`absolute_file_paths`: {e}")))?;
        }
        let cwd = working_directory(
            &context.settings.files,
            args.working_directory_absolute_path.as_deref(),
            &context.session.meta.cwd,
        )?;
        let continuation = args
            .continuation_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty());
        let thread = engine::open_thread(context, "clink", continuation, &prompt).await?;

        let mut full_prompt = format!("{}\n\n=== REQUEST ===\n{}\n", role.trim(), prompt.trim());
        if !paths.is_empty() {
            full_prompt.push_str("\n=== FILES TO READ ===\n");
            for path in &paths {
                full_prompt.push_str(&format!("- {path}\n"));
            }
        }
        context
            .progress
            .progress(0.0, None, format!("running {cli_name} as {role_name}"));
        let answer = run_cli(
            &cli_name,
            cli,
            &self.clink,
            &self.config_file,
            &full_prompt,
            cwd.path(),
            &context.cancel,
        )
        .await
        .map_err(|e| match e {
            ClinkError::NotFound { .. } => ToolError::InvalidArguments(e.to_string()),
            other => ToolError::Failed(other.to_string()),
        })?;

        engine::record_turn(
            context,
            &thread,
            "clink",
            true,
            &format!("[clink: {cli_name} as {role_name}] {}", prompt.trim()),
            &paths,
        )
        .await?;
        let outcome =
            engine::record_turn(context, &thread, "clink", false, &answer.text, &[]).await?;

        let mut run = format!(
            "clink: {cli_name} as {role_name} · {:.1} s",
            answer.elapsed.as_secs_f64()
        );
        if let Some(code) = answer.exit_code.filter(|c| *c != 0) {
            run.push_str(&format!(" · exit code {code}"));
        }
        let mut footer = format!("{run}\n");
        if answer.cut_chars > 0 {
            footer.push_str(&format!(
                "note: the answer was cut at {} characters (~{} more not shown)\n",
                self.clink.max_output_chars, answer.cut_chars
            ));
        }
        footer.push_str(&format!(
            "continuation_id: {thread} ({} turns left) — pass it to any zen tool to continue this conversation.",
            outcome.remaining_turns
        ));
        let text = crate::tools::pages::Answer {
            header: format!("[zen] continuation_id: {thread} · {run}"),
            before: String::new(),
            text: answer.text,
            thread: thread.clone(),
            turn: outcome.turn_count,
            footer,
        }
        .to_text(context.result_budget());
        Ok(ToolOutput::text(text))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tokio_util::sync::CancellationToken;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn config(command: &Path) -> (CliConfig, ClinkConfig) {
        let dir = tempfile::tempdir().unwrap();
        let mut clink = ClinkConfig::load(dir.path()).unwrap();
        clink.timeout_secs = 5;
        clink.max_output_chars = 100;
        let cli = CliConfig {
            command: command.display().to_string(),
            args: vec!["--flag".into()],
            env: vec![],
            prompt: PromptVia::Stdin,
            timeout_secs: None,
        };
        (cli, clink)
    }

    async fn run(
        cli: &CliConfig,
        clink: &ClinkConfig,
        prompt: &str,
    ) -> Result<CliAnswer, ClinkError> {
        run_cli(
            "fake",
            cli,
            clink,
            "clink.yaml",
            prompt,
            Path::new("/tmp"),
            &CancellationToken::new(),
        )
        .await
    }

    #[test]
    fn shipped_clink_yaml_parses_with_three_clis_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let clink = ClinkConfig::load(dir.path()).unwrap();
        assert_eq!(
            clink.clis.keys().collect::<Vec<_>>(),
            vec!["claude", "codex", "gemini"]
        );
        assert!(clink.roles.contains_key("default") && clink.roles.contains_key("planner"));
        assert!(clink.clis.contains_key(&clink.default_cli));
    }

    #[tokio::test]
    async fn the_prompt_goes_in_on_stdin_with_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let fake = script(
            dir.path(),
            "fake",
            "echo \"args: $*\"; echo \"leak: ${CARGO_MANIFEST_DIR:-unset}\"; echo \"no_color: $NO_COLOR\"; cat",
        );
        let (cli, clink) = config(&fake);
        let answer = run(&cli, &clink, "hello").await.unwrap();
        assert!(answer.text.contains("args: --flag"), "{}", answer.text);
        // Cargo sets this for the test process; the CLI must not see it.
        assert!(answer.text.contains("leak: unset"), "{}", answer.text);
        assert!(answer.text.contains("no_color: 1"));
        assert!(answer.text.ends_with("hello"));
        assert_eq!(answer.exit_code, Some(0));
    }

    #[tokio::test]
    async fn output_is_capped_and_failures_and_timeouts_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let chatty = script(dir.path(), "chatty", "yes x | head -c 100000");
        let (cli, clink) = config(&chatty);
        let answer = run(&cli, &clink, "").await.unwrap();
        assert!(answer.text.len() <= 100);
        assert!(answer.cut_chars > 90_000, "{}", answer.cut_chars);

        let failing = script(dir.path(), "failing", "echo boom >&2; exit 3");
        let (cli, clink) = config(&failing);
        let err = run(&cli, &clink, "").await.unwrap_err().to_string();
        assert!(err.contains("exit code 3") && err.contains("boom"), "{err}");

        let marker = dir.path().join("survived");
        let slow = script(
            dir.path(),
            "slow",
            &format!("(sleep 3; touch {}) & sleep 30", marker.display()),
        );
        let (mut cli, clink) = config(&slow);
        cli.timeout_secs = Some(1);
        let err = run(&cli, &clink, "").await.unwrap_err();
        assert!(matches!(err, ClinkError::TimedOut { secs: 1, .. }), "{err}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "a process the CLI started outlived the timeout"
        );
    }

    #[tokio::test]
    async fn a_missing_cli_names_itself_and_the_fix() {
        let (mut cli, clink) = config(Path::new("/nonexistent/zen-fake"));
        cli.command = "zen-no-such-cli".into();
        let err = run(&cli, &clink, "").await.unwrap_err().to_string();
        assert!(
            err.contains("`fake` CLI was not found") && err.contains("zen-no-such-cli"),
            "{err}"
        );
    }
}
