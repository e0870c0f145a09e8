//! `zend register <client>`: add zen-shim to an MCP client's configuration.
//!
//! Claude Code is registered through its own CLI (`claude mcp add`); the others
//! through their config files: Claude Desktop, Gemini CLI and Cursor keep JSON
//! (`mcpServers`), Codex CLI keeps TOML (`[mcp_servers]`). A config file is
//! edited, never replaced: other servers, other keys, key order (serde_json's
//! `preserve_order`) and, in TOML, comments (`toml_edit`) survive, and keys the
//! user added to zen's own entry (such as their own `env` variables) are kept. A
//! file that does not parse is left alone with an error. `--print` shows the
//! result instead.
//!
//! When zen's locations are not the default ones (`--home`, `ZEN_HOME`,
//! `ZEN_SOCKET`, ...), the entry carries them in its `env` (`-e` for Claude
//! Code): clients give servers a stripped environment (Codex only a
//! whitelist), and a shim without them would find another socket and start a
//! second zend on the default home.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::service::Runner;

/// Codex CLI and Gemini CLI time out tool calls: at least this (a consensus of several
/// models can take minutes) ...
pub const MIN_TOOL_TIMEOUT_SECS: u64 = 600;
/// ... and the longest model call plus this, for what a tool does around it.
const TOOL_TIMEOUT_MARGIN_SECS: u64 = 60;

/// The tool-call timeout registered with clients that have one, given the longest
/// model timeout configured (`ModelsConfig::longest_timeout_secs`).
pub fn tool_timeout_secs(longest_model_timeout_secs: u64) -> u64 {
    longest_model_timeout_secs
        .saturating_add(TOOL_TIMEOUT_MARGIN_SECS)
        .max(MIN_TOOL_TIMEOUT_SECS)
}
/// The name zen is registered under.
pub const SERVER_NAME: &str = "zen";

/// The MCP clients `zend register` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Claude Code (`claude mcp add --scope user`).
    #[value(alias = "claude")]
    ClaudeCode,
    /// Claude Desktop (claude_desktop_config.json).
    ClaudeDesktop,
    /// Codex CLI (~/.codex/config.toml).
    Codex,
    /// Gemini CLI (~/.gemini/settings.json).
    Gemini,
    /// Cursor (~/.cursor/mcp.json).
    Cursor,
}

/// Where things are for this user; resolved by the caller.
#[derive(Debug, Clone)]
pub struct RegisterSpec {
    /// The command clients run: the absolute path of zen-shim, or a package runner
    /// (`npx`, `uvx`) when this zend came from one's cache (see [`package_runner`]).
    pub shim: PathBuf,
    /// Its arguments (none for zen-shim itself).
    pub args: Vec<String>,
    pub home: PathBuf,
    /// `$CODEX_HOME`, when set.
    pub codex_home: Option<PathBuf>,
    /// The `claude` executable, when it is on PATH.
    pub claude: Option<PathBuf>,
    /// What the shim needs in its environment to find this zen (its
    /// locations when they are not the default), sorted by name.
    pub env: Vec<(String, String)>,
    /// Gemini CLI: mark the server trusted (`--trust`).
    pub trust: bool,
    /// What Codex CLI and Gemini CLI are told to wait for a tool call ([`tool_timeout_secs`]).
    pub tool_timeout_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "cannot find zen-shim beside zend or on PATH; install it, or name it with --shim /path/to/zen-shim"
    )]
    NoShim,
    #[error("cannot find your home directory (is HOME set?)")]
    NoHome,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not valid {format} ({reason}); fix it or add zen by hand, it was left unchanged"
    )]
    Parse {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("cannot run `{command}`: {reason}")]
    Command { command: String, reason: String },
}

impl RegisterSpec {
    /// The spec for this user: `shim` if given, else zen-shim beside this zend, else on PATH.
    pub fn for_this_user(shim: Option<PathBuf>) -> Result<Self, RegisterError> {
        let runner = std::env::current_exe()
            .ok()
            .and_then(|me| package_runner(&me));
        let (shim, args) = match (shim, runner) {
            (Some(shim), _) => (std::path::absolute(&shim).unwrap_or(shim), Vec::new()),
            (None, Some((program, args))) => (PathBuf::from(program), args),
            (None, None) => (find_shim().ok_or(RegisterError::NoShim)?, Vec::new()),
        };
        Ok(Self {
            shim,
            args,
            ..Self::config_paths()?
        })
    }

    /// Enough to find the clients' config files (`zend keys import`): no shim.
    pub fn config_paths() -> Result<Self, RegisterError> {
        let shim = PathBuf::new();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
            .ok_or(RegisterError::NoHome)?;
        Ok(Self {
            shim,
            args: Vec::new(),
            home,
            codex_home: std::env::var_os("CODEX_HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            claude: on_path("claude"),
            env: Vec::new(),
            trust: false,
            tool_timeout_secs: MIN_TOOL_TIMEOUT_SECS,
        })
    }

    /// Adds the environment that points a shim at these locations; only the
    /// ones that differ from the default are given.
    pub fn with_locations(mut self, locations: &LocationEnv) -> Self {
        let mut env: Vec<(String, String)> = [
            (zen_proto::paths::HOME_ENV, &locations.home),
            ("ZEN_CONFIG_DIR", &locations.config_dir),
            ("ZEN_DATA_DIR", &locations.data_dir),
            ("ZEN_STATE_DIR", &locations.state_dir),
            ("ZEN_RUNTIME_DIR", &locations.runtime_dir),
            (zen_proto::paths::SOCKET_ENV, &locations.socket),
        ]
        .into_iter()
        .filter_map(|(name, path)| {
            let path = path.as_ref()?;
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            Some((name.to_owned(), path.to_string_lossy().into_owned()))
        })
        .collect();
        env.sort();
        self.env = env;
        self
    }
}

/// zen's locations as given on the command line or in the environment
/// (`None`: the default).
#[derive(Debug, Clone, Default)]
pub struct LocationEnv {
    pub home: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// A runtime directory alone does not reach the shim (it finds the
    /// socket through `ZEN_SOCKET`), so `socket` is set with it.
    pub runtime_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

/// The package runner command to register when `zend` runs from a runner's cache
/// rather than an install: `npx -y zen-mcp register ...` runs zend from npm's npx
/// cache and `uvx --from zen-mcp zend register ...` from uv's, both of which may be
/// cleaned at any time, so the entry names the runner instead of a path inside it.
pub fn package_runner(zend: &Path) -> Option<(&'static str, Vec<String>)> {
    let path = zend.to_string_lossy();
    if path.contains("/_npx/") {
        return Some(("npx", vec!["-y".into(), "zen-mcp".into()]));
    }
    if path.contains("/uv/archive-v") {
        return Some((
            "uvx",
            vec!["--from".into(), "zen-mcp".into(), "zen-shim".into()],
        ));
    }
    None
}

fn find_shim() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()?
        .canonicalize()
        .ok()?
        .with_file_name("zen-shim");
    if beside.is_file() {
        return Some(beside);
    }
    on_path("zen-shim")
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The config file `client` keeps its MCP servers in (None: Claude Code, which has a CLI).
pub fn config_path(client: Client, spec: &RegisterSpec) -> Option<PathBuf> {
    let home = &spec.home;
    match client {
        Client::ClaudeCode => None,
        Client::ClaudeDesktop if cfg!(target_os = "macos") => {
            Some(home.join("Library/Application Support/Claude/claude_desktop_config.json"))
        }
        Client::ClaudeDesktop => Some(home.join(".config/Claude/claude_desktop_config.json")),
        Client::Codex => Some(
            spec.codex_home
                .clone()
                .unwrap_or_else(|| home.join(".codex"))
                .join("config.toml"),
        ),
        Client::Gemini => Some(home.join(".gemini/settings.json")),
        Client::Cursor => Some(home.join(".cursor/mcp.json")),
    }
}

/// What registering did (or would do) to a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

/// Registers zen with `client`, or with `print` shows what that would do.
pub fn register(
    client: Client,
    spec: &RegisterSpec,
    print: bool,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<u8, RegisterError> {
    let Some(path) = config_path(client, spec) else {
        return register_claude_code(spec, print, runner, out);
    };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(RegisterError::Read { path, source }),
    };
    let shim = spec.shim.to_string_lossy();
    let (text, change) = match client {
        Client::Codex => merge_codex(
            existing.as_deref(),
            &shim,
            &spec.args,
            &spec.env,
            spec.tool_timeout_secs,
        ),
        _ => merge_json(existing.as_deref(), &json_entry(client, spec)),
    }
    .map_err(|(format, reason)| RegisterError::Parse {
        path: path.clone(),
        format,
        reason,
    })?;
    match (change, print) {
        (Change::Unchanged, _) => {
            let _ = writeln!(
                out,
                "{} already registers zen; nothing to do",
                path.display()
            );
        }
        (_, true) => {
            let _ = writeln!(out, "# would write {}", path.display());
            let _ = write!(out, "{text}");
        }
        (change, false) => {
            let backup = write_atomically(&path, &text)?;
            let verb = if change == Change::Added {
                "registered zen in"
            } else {
                "updated zen's entry in"
            };
            let _ = writeln!(
                out,
                "{verb} {}; restart the client to pick it up",
                path.display()
            );
            if let Some(backup) = backup {
                let _ = writeln!(out, "the previous version is in {}", backup.display());
            }
        }
    }
    if client == Client::Gemini && !spec.trust {
        let _ = writeln!(out, "{GEMINI_TRUST_NOTE}");
    }
    Ok(0)
}

/// Said by `zend register gemini` unless `--trust` was given.
pub const GEMINI_TRUST_NOTE: &str = "note: Gemini CLI hides MCP servers it does not trust when it \
runs headless (`gemini -p ...`): zen's tools will be missing there. To trust zen, run \
`zend register gemini --trust` (it adds \"trust\": true to zen's entry, which also skips Gemini's \
confirmation before each tool call).";

/// zen's entry in a JSON config (every client but Codex and Claude Code).
fn json_entry(client: Client, spec: &RegisterSpec) -> Value {
    let mut entry = json!({"command": spec.shim.to_string_lossy(), "args": spec.args});
    if client == Client::Gemini {
        entry["timeout"] = json!(spec.tool_timeout_secs.saturating_mul(1000));
        if spec.trust {
            entry["trust"] = json!(true);
        }
    }
    if !spec.env.is_empty() {
        entry["env"] = spec
            .env
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    entry
}

fn register_claude_code(
    spec: &RegisterSpec,
    print: bool,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<u8, RegisterError> {
    let mut argv = vec![
        "claude".to_owned(),
        "mcp".into(),
        "add".into(),
        "--scope".into(),
        "user".into(),
        SERVER_NAME.into(),
    ];
    // After the name: `-e` takes several values and would swallow a name
    // that followed it (claude-code issues 23365, 62332).
    for (name, value) in &spec.env {
        argv.push("-e".into());
        argv.push(format!("{name}={value}"));
    }
    argv.push("--".into());
    argv.push(spec.shim.to_string_lossy().into_owned());
    argv.extend(spec.args.iter().cloned());
    let shown = argv
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let Some(claude) = spec.claude.as_ref().filter(|_| !print) else {
        let why = if print {
            "would run"
        } else {
            "`claude` is not on PATH; run this once it is"
        };
        let _ = writeln!(out, "# {why}:\n{shown}");
        return Ok(0);
    };
    argv[0] = claude.to_string_lossy().into_owned();
    let output = runner.run(&argv).map_err(|e| RegisterError::Command {
        command: shown.clone(),
        reason: e.to_string(),
    })?;
    let _ = out.write_all(&output.stdout);
    if !output.status.success() {
        return Err(RegisterError::Command {
            command: shown,
            reason: format!(
                "{} ({}); if zen is already registered, `claude mcp remove --scope user zen` first",
                String::from_utf8_lossy(&output.stderr).trim(),
                output.status
            ),
        });
    }
    let _ = writeln!(out, "ran {shown}");
    Ok(0)
}

/// Adds or updates `mcpServers.zen` in a JSON config.
pub fn merge_json(
    existing: Option<&str>,
    entry: &Value,
) -> Result<(String, Change), (&'static str, String)> {
    let mut root = match existing.map(str::trim) {
        None | Some("") => json!({}),
        Some(text) => serde_json::from_str::<Value>(text).map_err(|e| ("JSON", e.to_string()))?,
    };
    let root_map = root
        .as_object_mut()
        .ok_or(("JSON", "the top level is not an object".to_owned()))?;
    let servers = root_map
        .entry("mcpServers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or(("JSON", "`mcpServers` is not an object".to_owned()))?;
    let change = merge_entry(servers, entry);
    let mut text = serde_json::to_string_pretty(&root).map_err(|e| ("JSON", e.to_string()))?;
    text.push('\n');
    Ok((text, change))
}

fn merge_entry(servers: &mut serde_json::Map<String, Value>, entry: &Value) -> Change {
    let Some(fields) = entry.as_object() else {
        return Change::Unchanged;
    };
    match servers.get_mut(SERVER_NAME).and_then(Value::as_object_mut) {
        Some(zen) => {
            let mut change = Change::Unchanged;
            for (key, value) in fields {
                // The user's own variables in `env` stay beside zen's.
                if let (Some(new), Some(Value::Object(env))) =
                    (value.as_object().filter(|_| key == "env"), zen.get_mut(key))
                {
                    for (name, value) in new {
                        if env.get(name) != Some(value) {
                            env.insert(name.clone(), value.clone());
                            change = Change::Updated;
                        }
                    }
                    continue;
                }
                if zen.get(key) != Some(value) {
                    zen.insert(key.clone(), value.clone());
                    change = Change::Updated;
                }
            }
            change
        }
        None => {
            servers.insert(SERVER_NAME.to_owned(), entry.clone());
            Change::Added
        }
    }
}

/// Adds or updates `[mcp_servers.zen]` in Codex's config.toml, keeping comments.
pub fn merge_codex(
    existing: Option<&str>,
    shim: &str,
    args: &[String],
    env: &[(String, String)],
    timeout_secs: u64,
) -> Result<(String, Change), (&'static str, String)> {
    use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, value};
    let mut doc = existing
        .unwrap_or("")
        .parse::<DocumentMut>()
        .map_err(|e| ("TOML", e.to_string()))?;
    let servers = doc
        .entry("mcp_servers")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_mut()
        .ok_or(("TOML", "`mcp_servers` is not a table".to_owned()))?;
    let added = !servers.contains_key(SERVER_NAME);
    let zen = servers
        .entry(SERVER_NAME)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or(("TOML", "`mcp_servers.zen` is not a table".to_owned()))?;
    let before = zen.to_string();
    if zen.get("command").and_then(Item::as_str) != Some(shim) {
        zen["command"] = value(shim);
    }
    let same_args = zen.get("args").and_then(Item::as_array).is_some_and(|a| {
        a.len() == args.len() && a.iter().zip(args).all(|(v, arg)| v.as_str() == Some(arg))
    });
    if !same_args {
        zen["args"] = value(args.iter().collect::<Array>());
    }
    let timeout = i64::try_from(timeout_secs).unwrap_or(i64::MAX);
    if zen.get("tool_timeout_sec").and_then(Item::as_integer) != Some(timeout) {
        zen["tool_timeout_sec"] = value(timeout);
    }
    if !env.is_empty() {
        // Codex passes a server only a whitelist of the environment plus this
        // table; the user's own entries in it are kept.
        let table = zen
            .entry("env")
            .or_insert_with(|| value(InlineTable::new()))
            .as_table_like_mut()
            .ok_or(("TOML", "`mcp_servers.zen.env` is not a table".to_owned()))?;
        let mut changed = false;
        for (name, path) in env {
            if table.get(name).and_then(Item::as_str) != Some(path.as_str()) {
                table.insert(name, value(path.as_str()));
                changed = true;
            }
        }
        if changed {
            table.fmt();
        }
    }
    let change = if added {
        Change::Added
    } else if zen.to_string() != before {
        Change::Updated
    } else {
        Change::Unchanged
    };
    Ok((doc.to_string(), change))
}

/// The suffix of the one backup kept beside a config `zend register` changed.
pub const BACKUP_SUFFIX: &str = ".zen-backup";

/// Writes through a temporary file (0600) in the same directory, so a crash
/// never leaves a half-written config; an existing file keeps its permissions,
/// and its previous text is kept as `<file>.zen-backup` (one backup, the last
/// one; returned). A symlinked config (dotfiles) is written where the link
/// points; the link stays.
fn write_atomically(path: &Path, text: &str) -> Result<Option<PathBuf>, RegisterError> {
    let error = |source| RegisterError::Write {
        path: path.to_path_buf(),
        source,
    };
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        std::fs::canonicalize(path).map_err(error)?
    } else {
        path.to_path_buf()
    };
    let path = target.as_path();
    let backup = match std::fs::read(path) {
        Ok(previous) => {
            let backup = PathBuf::from(format!("{}{BACKUP_SUFFIX}", path.display()));
            write_private(&backup, &previous).map_err(error)?;
            Some(backup)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(error(e)),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut temp = tempfile_in(dir).map_err(error)?;
    temp.1.write_all(text.as_bytes()).map_err(error)?;
    temp.1.sync_all().map_err(error)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&temp.0, meta.permissions()).map_err(error)?;
    }
    std::fs::rename(&temp.0, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp.0);
        error(e)
    })?;
    Ok(backup)
}

/// Replaces `path` with `bytes`, 0600 (a client config may hold other servers' keys).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The temporary file, created 0600 whatever the umask: it holds the config's
/// text (other servers' keys included) until it is renamed over the config.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!(".zen-register-{}.tmp", std::process::id()));
    let file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_other_servers_keys_and_order() {
        let existing = r#"{
  "theme": "dark",
  "mcpServers": {
    "other": {"command": "other-server", "args": ["--x"]},
    "zen": {"command": "/old/zen-shim", "env": {"ZEN_LOG": "debug"}}
  },
  "zzz": 1
}"#;
        let (text, change) = merge_json(
            Some(existing),
            &json!({"command": "/new/zen-shim", "args": []}),
        )
        .unwrap();
        assert_eq!(change, Change::Updated);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["mcpServers"]["other"]["args"], json!(["--x"]));
        assert_eq!(value["mcpServers"]["zen"]["command"], "/new/zen-shim");
        assert_eq!(value["mcpServers"]["zen"]["env"]["ZEN_LOG"], "debug");
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["theme", "mcpServers", "zzz"]);

        let (again, change) = merge_json(
            Some(&text),
            &json!({"command": "/new/zen-shim", "args": []}),
        )
        .unwrap();
        assert_eq!(change, Change::Unchanged);
        assert_eq!(again, text);
    }

    #[test]
    fn json_that_is_not_an_object_is_refused() {
        assert!(merge_json(Some("[1]"), &json!({})).is_err());
        assert!(merge_json(Some("{\"mcpServers\": 3}"), &json!({})).is_err());
        assert!(merge_json(Some("{ // comment\n}"), &json!({})).is_err());
        let (text, change) = merge_json(None, &json!({"command": "s"})).unwrap();
        assert_eq!(change, Change::Added);
        assert_eq!(
            text,
            "{\n  \"mcpServers\": {\n    \"zen\": {\n      \"command\": \"s\"\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn codex_toml_keeps_comments_and_other_servers() {
        let existing = "# my codex config\nmodel = \"o3\" # the best\n\n[mcp_servers.other]\ncommand = \"other\"\n";
        let (text, change) = merge_codex(Some(existing), "/bin/zen-shim", &[], &[], 600).unwrap();
        assert_eq!(change, Change::Added);
        assert_eq!(
            text,
            "# my codex config\nmodel = \"o3\" # the best\n\n[mcp_servers.other]\ncommand = \"other\"\n\n\
             [mcp_servers.zen]\ncommand = \"/bin/zen-shim\"\nargs = []\ntool_timeout_sec = 600\n"
        );
        let (again, change) = merge_codex(Some(&text), "/bin/zen-shim", &[], &[], 600).unwrap();
        assert_eq!(change, Change::Unchanged);
        assert_eq!(again, text);
        let (_, change) = merge_codex(Some(&text), "/elsewhere/zen-shim", &[], &[], 600).unwrap();
        assert_eq!(change, Change::Updated);
        let (longer, change) = merge_codex(Some(&text), "/bin/zen-shim", &[], &[], 1860).unwrap();
        assert_eq!(change, Change::Updated);
        assert!(longer.contains("tool_timeout_sec = 1860\n"), "{longer}");
        assert!(merge_codex(Some("mcp_servers = 3\n"), "/x", &[], &[], 600).is_err());
        assert!(merge_codex(Some("not toml ["), "/x", &[], &[], 600).is_err());
    }

    #[test]
    fn tool_timeouts_cover_the_longest_model_call() {
        assert_eq!(tool_timeout_secs(1800), 1860);
        assert_eq!(tool_timeout_secs(60), MIN_TOOL_TIMEOUT_SECS);
        assert_eq!(tool_timeout_secs(u64::MAX), u64::MAX);
    }

    #[test]
    fn locations_go_into_env_beside_the_users_own() {
        let env = vec![("ZEN_HOME".to_owned(), "/z".to_owned())];
        let existing = "[mcp_servers.zen]\ncommand = \"/bin/zen-shim\"\nenv = { FOO = \"1\" }\n";
        let (text, change) = merge_codex(Some(existing), "/bin/zen-shim", &[], &env, 600).unwrap();
        assert_eq!(change, Change::Updated);
        assert!(
            text.contains("env = { FOO = \"1\", ZEN_HOME = \"/z\" }"),
            "{text}"
        );
        let (_, change) = merge_codex(Some(&text), "/bin/zen-shim", &[], &env, 600).unwrap();
        assert_eq!(change, Change::Unchanged);

        let existing =
            r#"{"mcpServers": {"zen": {"command": "s", "args": [], "env": {"FOO": "1"}}}}"#;
        let entry = json!({"command": "s", "args": [], "env": {"ZEN_HOME": "/z"}});
        let (text, change) = merge_json(Some(existing), &entry).unwrap();
        assert_eq!(change, Change::Updated);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["mcpServers"]["zen"]["env"],
            json!({"FOO": "1", "ZEN_HOME": "/z"})
        );
        assert_eq!(
            merge_json(Some(&text), &entry).unwrap().1,
            Change::Unchanged
        );
    }

    #[test]
    fn a_zend_in_a_package_runners_cache_registers_the_runner() {
        let npx = Path::new("/home/u/.npm/_npx/6f1c/node_modules/zen-mcp/bin/zend");
        assert_eq!(
            package_runner(npx),
            Some(("npx", vec!["-y".to_owned(), "zen-mcp".to_owned()]))
        );
        let uvx = Path::new("/home/u/.cache/uv/archive-v0/Xb9/bin/zend");
        assert_eq!(package_runner(uvx).map(|(p, _)| p), Some("uvx"));
        assert_eq!(package_runner(Path::new("/usr/local/bin/zend")), None);
        assert_eq!(
            package_runner(Path::new("/usr/lib/node_modules/zen-mcp/bin/zend")),
            None
        );

        let args = ["-y".to_owned(), "zen-mcp".to_owned()];
        let (text, _) = merge_codex(None, "npx", &args, &[], 600).unwrap();
        assert!(
            text.contains("command = \"npx\"\nargs = [\"-y\", \"zen-mcp\"]"),
            "{text}"
        );
        let (_, change) = merge_codex(Some(&text), "npx", &args, &[], 600).unwrap();
        assert_eq!(change, Change::Unchanged);
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_quote("/usr/bin/zen-shim"), "/usr/bin/zen-shim");
        assert_eq!(shell_quote("/my apps/it's"), "'/my apps/it'\\''s'");
    }
}
