//! The harness: an isolated zen home, MCP clients over real shims, and daemon
//! bookkeeping so that no test leaks a process.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod mock_provider;

/// A fake API key that must never show up in anything zend writes.
pub const FAKE_KEY: &str = "sk-zen-e2e-DO-NOT-LEAK-7f3a9c";

/// How long any single expected message may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// How long a one-shot command (`zend stop`, `zend status`, ...) may run before
/// the test fails naming it, instead of hanging the run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// The assistant CLIs clink knows: no test may reach a real one.
const ASSISTANT_CLIS: &[&str] = &["claude", "codex", "gemini"];

/// Proxy variables, in every spelling HTTP clients read, that the harness
/// removes from every process it starts: the mock provider is on loopback.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The host's PATH without the directories that hold a real assistant CLI, so
/// that clink in a test runs only the fake CLIs the test puts first on PATH.
pub fn host_path() -> String {
    without_assistant_clis(&std::env::var_os("PATH").unwrap_or_default())
}

/// `path` (a PATH value) without the directories that hold an assistant CLI.
pub fn without_assistant_clis(path: &std::ffi::OsStr) -> String {
    let dirs = std::env::split_paths(path)
        .filter(|dir| !ASSISTANT_CLIS.iter().any(|cli| dir.join(cli).exists()));
    std::env::join_paths(dirs)
        .expect("PATH entries rejoin")
        .to_string_lossy()
        .into_owned()
}

/// Makes `command` hermetic: no proxy between it and loopback, and a PATH on
/// which no real assistant CLI is found (a test's own PATH is set after this).
pub fn hermetic(command: &mut Command) -> &mut Command {
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost,::1")
        .env("no_proxy", "127.0.0.1,localhost,::1")
        .env("PATH", host_path())
}

/// Runs `command` to completion; past `deadline` kills it and fails the test
/// naming the command, so a hang is a failure with a message.
pub fn output_within(command: &mut Command, deadline: Duration) -> Output {
    try_output_within(command, deadline).unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// [`output_within`], or the error when `command` cannot be started at all.
pub fn try_output_within(command: &mut Command, deadline: Duration) -> std::io::Result<Output> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    Ok(child_output_within(
        child,
        deadline,
        &format!("{command:?}"),
    ))
}

/// What a started `child` (stdout and stderr piped) printed once it exits;
/// past `deadline` kills it and fails the test naming `what`.
pub fn child_output_within(mut child: Child, deadline: Duration, what: &str) -> Output {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut bytes);
        bytes
    });
    let status = wait_within(&mut child, deadline, what);
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `zend stop` for a zend that is the test's own child, reaped while stop
/// waits (stop would see a zombie as still alive); zend's exit status.
pub fn stop_child_daemon(home: &ZenHome, daemon: &mut Child) -> ExitStatus {
    let stop = home
        .command(&zend_bin())
        .arg("stop")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zend stop starts");
    let status = wait_within(daemon, WAIT, "zend serve");
    let stop = child_output_within(stop, WAIT, "zend stop");
    assert!(stop.status.success(), "{stop:?}");
    status
}

/// Starts `command` (a `zend serve ...`; stdio to /dev/null) and returns it
/// once `ready` holds; fails the test naming `what` when it exits first or is
/// not ready within [`WAIT`] (killing it).
pub fn spawn_until_ready(mut command: Command, what: &str, ready: impl Fn() -> bool) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let until = Instant::now() + WAIT;
    while !ready() {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            panic!("{what} exited before it was ready: {status}");
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} was not ready within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether something accepts connections on loopback `port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits for `child` to exit; past `deadline` kills it and fails the test
/// naming `what`, so a hang is a failure with a message.
pub fn wait_within(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`output_within`] as a method, for the end of a `Command` builder chain.
pub trait OutputWithin {
    fn output_within(&mut self, deadline: Duration) -> Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self, deadline: Duration) -> Output {
        output_within(self, deadline)
    }
}

/// Waits (up to [`WAIT`]) until `done` holds; past it fails the test naming `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// zend's estimate of a request's input tokens, as it documents it: a quarter of
/// the bytes of each text (system prompt, message contents, text parts), rounded up.
pub fn estimated_input_tokens(body: &Value) -> u64 {
    let quarter = |text: &str| (text.len() as u64).div_ceil(4);
    let mut tokens = 0;
    for message in body["messages"].as_array().expect("an OpenAI chat request") {
        tokens += match &message["content"] {
            Value::String(text) => quarter(text),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .map(quarter)
                .sum(),
            _ => 0,
        };
    }
    tokens
}

/// The continuation id an answer's text names.
pub fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .unwrap_or_else(|| panic!("no continuation_id in {text}"))
        + "continuation_id: ".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect()
}

pub fn zend_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zend"))
}

pub fn shim_bin() -> PathBuf {
    let shim = zend_bin().with_file_name("zen-shim");
    assert!(
        shim.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        shim.display()
    );
    shim
}

/// A private zen home: config, data, state and the socket live under it.
pub struct ZenHome {
    pub dir: tempfile::TempDir,
    /// Extra environment for every process started from this home. A zend a
    /// shim starts gets only `HOME`, `PATH` and `ZEN_*` of it (the shim cleans
    /// its environment), so the rest also goes into zen's `.env`.
    pub env: Vec<(String, String)>,
    /// What the test wrote to `config/.env` itself.
    dotenv: std::sync::Mutex<String>,
}

impl ZenHome {
    pub fn new() -> Self {
        // Short path: the socket lives under it (macOS caps socket paths at 104 bytes).
        let dir = tempfile::Builder::new()
            .prefix("zt")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        Self {
            dir,
            env: Vec::new(),
            dotenv: std::sync::Mutex::new(String::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.path().join("config")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run").join("zend.sock")
    }

    /// A home whose OpenAI (and DeepSeek) traffic goes to `mock`, with a
    /// distinctive fake key and fast retries.
    pub fn with_mock(mock: &mock_provider::MockProvider) -> Self {
        let mut home = Self::new();
        home.env.push(("OPENAI_API_KEY".into(), FAKE_KEY.into()));
        home.env.push(("OPENAI_BASE_URL".into(), mock.v1()));
        home.env.push(("DEEPSEEK_API_KEY".into(), FAKE_KEY.into()));
        home.env.push(("DEEPSEEK_BASE_URL".into(), mock.v1()));
        home.write_config(
            "models.yaml",
            "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n",
        );
        home
    }

    /// Writes a file into the config directory.
    pub fn write_config(&self, name: &str, text: &str) {
        if name == ".env" {
            *self.dotenv.lock().unwrap() = text.to_owned();
            self.write_dotenv();
            return;
        }
        let path = self.config_dir().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `config/.env`: what the test wrote, then the variables of `env` a
    /// shim does not pass to the zend it starts.
    fn write_dotenv(&self) {
        let mut text = self.dotenv.lock().unwrap().clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for (key, value) in &self.env {
            if !(key.starts_with("ZEN_") || key == "PATH" || key == "HOME") {
                text.push_str(&format!("{key}={value}\n"));
            }
        }
        let path = self.config_dir().join(".env");
        if std::fs::read_to_string(&path).unwrap_or_default() != text {
            std::fs::write(path, text).unwrap();
        }
    }

    /// A command with the stripped environment MCP clients give servers.
    pub fn command(&self, program: &Path) -> Command {
        self.write_dotenv();
        let mut command = Command::new(program);
        command.env_clear();
        hermetic(&mut command)
            .env("HOME", self.path())
            .env("ZEN_HOME", self.path());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    pub fn zend(&self, args: &[&str]) -> Output {
        output_within(self.command(&zend_bin()).args(args), COMMAND_DEADLINE)
    }

    /// `zend status --json` of the running daemon (the test fails if none answers).
    pub fn status_json(&self) -> Value {
        let out = self.zend(&["status", "--json"]);
        assert!(
            out.status.success(),
            "zend status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("zend status --json prints JSON")
    }

    /// Starts an MCP client session through a fresh zen-shim (not yet initialized).
    pub fn shim(&self) -> McpClient {
        let mut client = McpClient::spawn(self.command(&shim_bin()));
        client.state_dir = Some(self.path().join("state"));
        client
    }

    /// Starts a shim and completes the MCP handshake.
    pub fn session(&self) -> McpClient {
        let mut client = self.shim();
        client.initialize();
        client
    }

    /// The pid in the lock file (the daemon that holds or last held it).
    pub fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.path().join("run/zend.lock"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Live `zend` processes whose ZEN_HOME is this home.
    pub fn zend_pids(&self) -> Vec<u32> {
        let needle = format!("ZEN_HOME={}", self.path().display());
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if !argv0.ends_with(b"zend") {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
                && !is_zombie(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits until no zend of this home is alive.
    pub fn wait_no_daemon(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.zend_pids().is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.zend_pids().is_empty()
    }

    /// Waits until the zend with this pid is gone.
    pub fn wait_no_daemon_pid(&self, pid: u32, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.zend_pids().contains(&pid) {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops this home's daemon: politely, then by force.
    pub fn stop_daemon(&self) {
        if self.zend_pids().is_empty() {
            return;
        }
        let _ = self.zend(&["stop", "--deadline", "2"]);
        if !self.wait_no_daemon(Duration::from_secs(5)) {
            for pid in self.zend_pids() {
                kill9(pid);
            }
            self.wait_no_daemon(Duration::from_secs(5));
        }
    }
}

impl Drop for ZenHome {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

/// True when the process is gone or only its zombie remains. The thread-group
/// leader turns into a zombie while its other threads may still be exiting
/// (and still hold its sockets open), so every thread must be a zombie.
fn is_zombie(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .map(|stat| {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                state.starts_with('Z') || state.starts_with('X')
            })
            .unwrap_or(true)
    })
}

/// Sends the signal `name` (`TERM`, `HUP`, `9`, ...) to `pid`; whether `kill` did.
pub fn signal(pid: u32, name: &str) -> bool {
    output_within(
        Command::new("kill").args([format!("-{name}"), pid.to_string()]),
        COMMAND_DEADLINE,
    )
    .status
    .success()
}

pub fn kill9(pid: u32) {
    let _ = signal(pid, "9");
}

/// One MCP client talking to one zen-shim.
pub struct McpClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Reads the shim's stderr to its end; joined once the shim exits.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    next_id: u64,
    /// Notifications seen while waiting for responses.
    pub notifications: Vec<Value>,
    /// Where zend logs, so failures can show what the daemon did.
    pub state_dir: Option<PathBuf>,
}

impl McpClient {
    pub fn spawn(mut command: Command) -> Self {
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        let mut child = command
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("no_proxy", "127.0.0.1,localhost,::1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut child_stderr = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut child_stderr, &mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            next_id: 1,
            notifications: Vec::new(),
            state_dir: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The last lines of zend's logs, for failure messages.
    pub fn daemon_log(&self) -> String {
        let Some(dir) = &self.state_dir else {
            return String::new();
        };
        // zend's log writer is asynchronous: give it a moment to catch up.
        std::thread::sleep(Duration::from_millis(300));
        let mut text = String::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
        }
        text
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// The next line from the shim, parsed.
    pub fn recv(&mut self) -> Value {
        let line = self.lines.recv_timeout(WAIT).unwrap_or_else(|e| {
            panic!(
                "no message from zen-shim ({e}); its stderr: {}\nzend's log:\n{}",
                self.stderr(),
                self.daemon_log()
            )
        });
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("shim wrote a non-JSON line {line:?}: {e}"))
    }

    /// Sends a request and returns its response (result or error object),
    /// collecting notifications that arrive meanwhile.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response_to(id)
    }

    pub fn response_to(&mut self, id: u64) -> Value {
        loop {
            let message = self.recv();
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message;
            }
            self.notifications.push(message);
        }
    }

    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn initialize(&mut self) -> Value {
        self.initialize_as("zen-e2e")
    }

    /// The MCP handshake, as a client of this name.
    pub fn initialize_as(&mut self, client_name: &str) -> Value {
        let response = self.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": "1.0"}
            }),
        );
        assert!(
            response.get("result").is_some(),
            "initialize failed: {response}"
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        response
    }

    /// The names in `tools/list`.
    pub fn tool_names(&mut self) -> Names {
        let tools = self.request("tools/list", json!({}));
        Names(
            tools["result"]["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("tools/list failed: {tools}"))
                .iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                .collect(),
        )
    }

    /// `tools/call`; returns the `result` object (panics on a JSON-RPC error).
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let response = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("tools/call {name} failed: {response}"),
        }
    }

    /// Sends `tools/call` without waiting; the answer is `response_to(id)`.
    pub fn send_tool_call(&mut self, name: &str, arguments: Value) -> u64 {
        let id = self.next_request_id();
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}));
        id
    }

    /// Closes stdin (end of input) and keeps reading what the shim writes.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The next line from the shim, or `None` once it closed stdout.
    pub fn try_recv(&mut self, within: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(within).ok()?;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("shim wrote a non-JSON line {line:?}: {e}")),
        )
    }

    /// Closes stdin and waits for the shim to exit.
    pub fn close(mut self) -> ExitStatus {
        self.stdin.take();
        self.wait()
    }

    /// The shim's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // All of stderr is in, unless a daemon it started holds it open.
                if let Some(reader) = self.stderr_reader.take() {
                    let until = Instant::now() + Duration::from_secs(2);
                    while !reader.is_finished() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                return status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("zen-shim did not exit; its stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text content of a tools/call result.
pub fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The text of a tools/call result that must not be an error (failing the
/// test with the text if it is): a warm-up or lookup call read as a success.
pub fn ok_text(result: &Value) -> String {
    let text = result_text(result);
    assert_eq!(result["isError"], false, "{text}");
    text
}

/// The pid zend reports in the `version` tool's text.
pub fn pid_from_version(text: &str) -> u32 {
    let start = text.find("(pid ").expect("version text names the pid") + 5;
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Tool names from `tools/list`, checked with `contains(&"name")`.
#[derive(Debug)]
pub struct Names(pub Vec<String>);

impl Names {
    pub fn contains(&self, name: &&str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}
