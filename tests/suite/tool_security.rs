//! What tools may read, run and send (issue #32 items 2, 3, 4, 6, 9): zen's own
//! files and the user's credentials never reach a model, every path a tool
//! reads passes one check (a FIFO cannot hang zend, a call's reads are capped),
//! precommit's git runs nothing a repository names in a cleared environment,
//! clink never runs in a shared directory, and prompts stay out of the logs.
//! And an HTTP body over 16 MiB is refused (item 11).

use crate::support::OutputWithin;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{FAKE_KEY, McpClient, WAIT, ZenHome, result_text, zend_bin};

/// Calls a tool and returns (text, is_error).
fn call(client: &mut McpClient, tool: &str, arguments: Value) -> (String, bool) {
    let result = client.call_tool(tool, arguments);
    (result_text(&result), result["isError"] == true)
}

/// Every request body the mock received, as one text.
fn sent(mock: &MockProvider) -> String {
    mock.requests()
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn script(path: &Path, body: &str) {
    write(path, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .unwrap_or_else(|| panic!("no continuation_id in: {text}"))
        + "continuation_id: ".len();
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn zen_files_and_credentials_never_reach_a_model_and_the_refusal_names_the_rule() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    // HOME is the zen home: ~/.ssh and ~/.aws are the user's.
    let ssh_key = write(&home.path().join(".ssh/id_ed25519"), "SSH_KEY_MARKER\n");
    let aws = write(
        &home.path().join(".aws/credentials"),
        "[default]\naws_secret_access_key = AWS_MARKER\n",
    );
    let dotenv = write(
        &home.config_dir().join(".env"),
        "ZEN_E2E_UNUSED=DOTENV_MARKER\n",
    );
    let project = home.path().join("project");
    let source = write(&project.join("main.rs"), "fn main() {} // PROJECT_MARKER\n");
    let pem = write(
        &project.join("deploy.pem"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nPEM_MARKER\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let mut client = home.session();

    for (file, rule) in [
        (&ssh_key, "`.ssh`"),
        (&aws, "`.aws/credentials`"),
        (&dotenv, "zen's own config directory"),
        (&pem, "private key"),
    ] {
        let (text, is_error) = call(
            &mut client,
            "chat",
            json!({"prompt": "summarise", "model": "gpt-5", "absolute_file_paths": [file]}),
        );
        assert!(is_error, "{} was accepted: {text}", file.display());
        assert!(text.contains(rule), "{text}");
        if rule != "zen's own config directory" {
            assert!(
                text.contains("files.allow") && text.contains("server.yaml"),
                "{text}"
            );
        }
    }
    // A directory walk leaves the key out and says so; the rest is sent.
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "summarise", "model": "gpt-5", "absolute_file_paths": [project]}),
    );
    assert!(!is_error, "{text}");
    let bodies = sent(&mock);
    assert!(bodies.contains("PROJECT_MARKER"), "{bodies}");
    assert!(bodies.contains("deploy.pem (refused"), "{bodies}");
    for marker in [
        "SSH_KEY_MARKER",
        "AWS_MARKER",
        "DOTENV_MARKER",
        "PEM_MARKER",
    ] {
        assert!(!bodies.contains(marker), "{marker} reached the model");
    }
    drop(source);
}

#[test]
fn provider_keys_are_replaced_in_every_request_body() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let file = write(
        &home.path().join("project/config.py"),
        &format!("API_KEY = \"{FAKE_KEY}\"\n"),
    );
    let mut client = home.session();
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": format!("is {FAKE_KEY} a valid key?"), "model": "gpt-5",
               "absolute_file_paths": [file]}),
    );
    assert!(!is_error, "{text}");
    assert_eq!(mock.completions().len(), 1);
    let bodies = sent(&mock);
    assert!(
        !bodies.contains(FAKE_KEY),
        "a provider key left zend: {bodies}"
    );
    assert!(bodies.contains("[zen: key removed]"), "{bodies}");
}

#[test]
fn a_refused_file_is_not_sent_through_a_workflow_step_a_continuation_or_prompt_txt() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let secret = write(&home.path().join(".ssh/id_rsa"), "SSH_KEY_MARKER\n");
    let project = home.path().join("project");
    let notes = write(&project.join("notes.md"), "NOTES_MARKER\n");
    let mut client = home.session();

    // A workflow step may not record it for a later turn to read.
    let (text, is_error) = call(
        &mut client,
        "analyze",
        json!({"step": "look", "step_number": 1, "total_steps": 2, "next_step_required": true,
               "findings": "f", "relevant_files": [notes, secret]}),
    );
    assert!(is_error, "a refused relevant_file was accepted: {text}");
    assert!(
        text.contains("`relevant_files`") && text.contains(".ssh"),
        "{text}"
    );

    // A file of an earlier turn is checked again when re-read: swapped for a
    // link to the key after turn 1, it is left out of turn 2.
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "read my notes", "model": "gpt-5", "absolute_file_paths": [notes]}),
    );
    assert!(!is_error, "{text}");
    let id = continuation_id(&text);
    std::fs::remove_file(&notes).unwrap();
    std::os::unix::fs::symlink(&secret, &notes).unwrap();
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "and now?", "model": "gpt-5", "continuation_id": id}),
    );
    assert!(!is_error, "{text}");
    assert!(sent(&mock).contains("NOTES_MARKER"));

    // prompt.txt is a file like any other, and capped.
    let key_prompt = write(&home.path().join(".ssh/prompt.txt"), "SSH_KEY_MARKER");
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "see prompt.txt", "model": "gpt-5", "absolute_file_paths": [key_prompt]}),
    );
    assert!(is_error && text.contains(".ssh"), "{text}");
    let huge = write(&project.join("prompt.txt"), &"HUGE_PROMPT ".repeat(300_000));
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "see prompt.txt", "model": "gpt-5", "absolute_file_paths": [huge]}),
    );
    assert!(is_error && text.contains("limit for prompt.txt"), "{text}");

    let bodies = sent(&mock);
    assert!(
        !bodies.contains("SSH_KEY_MARKER"),
        "the key reached the model"
    );
    assert!(
        !bodies.contains("HUGE_PROMPT"),
        "an oversized prompt.txt was sent"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

#[test]
fn precommit_runs_no_program_the_repository_names() {
    if crate::support::try_output_within(
        Command::new("git").arg("--version"),
        crate::support::COMMAND_DEADLINE,
    )
    .is_err()
    {
        eprintln!("skipped: git is not installed");
        return;
    }
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let repo = home.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write(&repo.join("a.txt"), "base\n");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "base"]);
    // Set up after the commit, so only zend's git could run them.
    let marker = home.path().join("PWNED");
    let evil = home.path().join("evil.sh");
    script(
        &evil,
        &format!("echo \"$0 $*\" >> '{}'; cat", marker.display()),
    );
    for (key, value) in [
        ("core.fsmonitor", evil.display().to_string()),
        ("filter.evil.clean", evil.display().to_string()),
        ("filter.evil.smudge", evil.display().to_string()),
        ("filter.evil.process", evil.display().to_string()),
        ("diff.external", evil.display().to_string()),
        ("diff.evil.textconv", evil.display().to_string()),
    ] {
        git(&repo, &["config", key, &value]);
    }
    write(&repo.join(".gitattributes"), "* filter=evil diff=evil\n");
    script(
        &repo.join(".git/hooks/post-index-change"),
        &format!("touch '{}'", marker.display()),
    );
    write(&repo.join("a.txt"), "base\nCHANGED_LINE\n");
    git_nothing_ran(&marker);

    let mut client = home.session();
    let mut continuation = Value::Null;
    for number in 1..=2 {
        let (text, is_error) = call(
            &mut client,
            "precommit",
            json!({"step": "check", "step_number": number, "total_steps": 2,
                   "next_step_required": number < 2, "findings": "f", "path": repo,
                   "model": "gpt-5", "continuation_id": continuation}),
        );
        assert!(!is_error, "{text}");
        continuation = json!(continuation_id(&text));
    }
    assert!(sent(&mock).contains("CHANGED_LINE"), "the diff was read");
    git_nothing_ran(&marker);
}

fn git_nothing_ran(marker: &Path) {
    assert!(
        !marker.exists(),
        "a program named by the repository ran: {}",
        std::fs::read_to_string(marker).unwrap_or_default()
    );
}

/// A streamable-HTTP MCP session against a `zend serve --http` of `home`.
struct HttpSession {
    daemon: std::process::Child,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next_id: u64,
}

impl HttpSession {
    fn start(home: &ZenHome) -> Self {
        let token = String::from_utf8(home.zend(&["http-token"]).stdout)
            .unwrap()
            .trim()
            .to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut serve = home.command(&zend_bin());
        serve.args(["serve", "--http", &format!("127.0.0.1:{port}")]);
        let daemon = crate::support::spawn_until_ready(serve, "zend serve --http", || {
            crate::support::listening(port)
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut session = Self {
            daemon,
            runtime,
            http: reqwest::Client::new(),
            url: format!("http://127.0.0.1:{port}/mcp"),
            token,
            session: String::new(),
            next_id: 1,
        };
        let init = session.post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "zen-security-e2e", "version": "1.0"}}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "zen", "{init}");
        session.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        session
    }

    fn post(&mut self, body: Value) -> Value {
        let id = body.get("id").cloned();
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&self.token)
            .json(&body);
        if !self.session.is_empty() {
            request = request
                .header("mcp-session-id", &self.session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let (session, text) = self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let session = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (session, response.text().await.unwrap())
        });
        if let Some(session) = session {
            self.session = session;
        }
        let Some(id) = id else {
            return Value::Null;
        };
        let messages: Vec<Value> = if text.trim_start().starts_with('{') {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect()
        };
        messages
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no reply to {id} in {text}"))
    }

    /// POSTs `body` as it is in this session: its status and text, or the
    /// transport error (a server that stops reading a body may close first).
    fn post_raw(&mut self, body: String) -> Result<(u16, String), String> {
        // A connection of its own: zend may close it, and the session's stays pooled.
        let request = reqwest::Client::new()
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-06-18")
            .bearer_auth(&self.token)
            .body(body);
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            Ok((status, response.text().await.map_err(|e| e.to_string())?))
        })
    }

    /// POSTs `body` with no session id (a new session), on a connection of its own.
    fn post_new_session(&self, body: String) -> (u16, String) {
        let request = reqwest::Client::new()
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .bearer_auth(&self.token)
            .body(body);
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    }

    fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.next_id += 1;
        let reply = self.post(
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                                      "params": {"name": name, "arguments": arguments}}),
        );
        reply["result"].clone()
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn clink_without_a_session_directory_runs_in_a_private_one_prompt_on_stdin() {
    let mut home = ZenHome::new();
    let bin = home.path().join("bin");
    let seen = home.path().join("seen");
    script(
        &bin.join("gemini"),
        &format!(
            "pwd > '{}/cwd'; ls -ld . | cut -c1-10 > '{}/mode'; echo \"args=[$*]\"; cat",
            seen.display(),
            seen.display()
        ),
    );
    std::fs::create_dir_all(&seen).unwrap();
    home.env.push((
        "PATH".into(),
        format!("{}:{}", bin.display(), crate::support::host_path()),
    ));
    // Asking for the prompt in argv (visible to every local user) is not honoured.
    home.write_config("clink.yaml", "clis:\n  gemini:\n    prompt: argument\n");
    let mut session = HttpSession::start(&home);
    let result = session.call_tool("clink", json!({"prompt": "CLINK_SECRET_PROMPT"}));
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(text.contains("args=[]"), "the prompt went in argv: {text}");
    assert!(text.contains("CLINK_SECRET_PROMPT"), "{text}");
    let cwd = std::fs::read_to_string(seen.join("cwd")).unwrap();
    let cwd = Path::new(cwd.trim());
    assert_ne!(cwd, std::env::temp_dir(), "ran in the shared temp dir");
    assert!(
        cwd.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("zen-clink-")),
        "{}",
        cwd.display()
    );
    assert_eq!(
        std::fs::read_to_string(seen.join("mode")).unwrap().trim(),
        "drwx------"
    );
    assert!(!cwd.exists(), "the private directory was left behind");
    drop(session);
}

#[test]
fn prompts_and_file_contents_stay_out_of_the_log_at_every_level() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "ANSWER_MARKER".into(),
        ..Behaviour::default()
    });
    let mut home = ZenHome::with_mock(&mock);
    home.env.push(("ZEN_LOG".into(), "trace".into()));
    let file = write(&home.path().join("project/a.rs"), "FILE_MARKER\n");
    let mut client = home.session();
    let (text, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "PROMPT_MARKER", "model": "gpt-5", "absolute_file_paths": [file]}),
    );
    assert!(!is_error, "{text}");
    // A bad argument's value must not reach the log through the error either.
    let (_, is_error) = call(
        &mut client,
        "chat",
        json!({"prompt": "x", "absolute_file_paths": "ARGUMENT_MARKER"}),
    );
    assert!(is_error);
    // rmcp's error for a session that does not start with initialize quotes the message.
    let mut early = home.shim();
    early.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "chat", "arguments": {"prompt": "EARLY_MARKER"}}}));
    let _ = early.try_recv(WAIT);
    drop(early);
    drop(client);
    home.stop_daemon();
    let log = std::fs::read_dir(home.path().join("state"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("zend."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("zend serving"), "{log}");
    for marker in [
        "EARLY_MARKER",
        "PROMPT_MARKER",
        "FILE_MARKER",
        "ANSWER_MARKER",
        "ARGUMENT_MARKER",
    ] {
        assert!(!log.contains(marker), "{marker} is in the log");
    }

    // The switch that lets them in is announced.
    home.env.push(("ZEN_LOG_BODIES".into(), "1".into()));
    let client = home.session();
    drop(client);
    home.stop_daemon();
    let log = String::from_utf8(home.zend(&["logs", "-n", "1000"]).stdout).unwrap();
    assert!(log.contains("ZEN_LOG_BODIES"), "{log}");
}

/// Makes a FIFO at `path` (nobody writes to it: opening it for reading blocks).
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}: {made}", path.display());
}

#[test]
fn a_fifo_swapped_in_after_the_check_never_hangs_zend() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let dir = home.path().join("project");
    let regular = write(&dir.join(".regular"), "NOTES_MARKER\n");
    let fifo = dir.join(".fifo");
    mkfifo(&fifo);
    let target = dir.join("notes.md");
    std::fs::hard_link(&regular, &target).unwrap();
    // The named file flips between a regular file and a FIFO nobody writes
    // to, so some calls check one and open the other: a blocking open of the
    // FIFO would hang that call, and the zend thread it runs on, for good.
    /// Stops the flipper however the test ends.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let flipper = {
        let (stop, dir, target) = (stop.0.clone(), dir.clone(), target.clone());
        std::thread::spawn(move || {
            let mut to_fifo = true;
            while !stop.load(Ordering::Relaxed) {
                let from = if to_fifo { &fifo } else { &regular };
                let swap = dir.join(format!(".swap{}", u8::from(to_fifo)));
                std::fs::hard_link(from, &swap).unwrap();
                std::fs::rename(&swap, &target).unwrap();
                to_fifo = !to_fifo;
            }
        })
    };
    let mut client = home.session();
    let (mut checked_fifo, mut opened_fifo, mut read) = (0, 0, 0);
    let until = std::time::Instant::now() + WAIT;
    while opened_fifo < 3 && std::time::Instant::now() < until {
        let (text, is_error) = call(
            &mut client,
            "chat",
            json!({"prompt": "read my notes", "model": "gpt-5", "absolute_file_paths": [target]}),
        );
        if is_error {
            assert!(text.contains("FIFO"), "{text}");
            checked_fifo += 1;
        } else if text.contains("not a regular file") {
            opened_fifo += 1;
        } else {
            read += 1;
        }
    }
    drop(stop);
    flipper.join().unwrap();
    eprintln!("FIFO at the check: {checked_fifo}, at the open: {opened_fifo}, read: {read}");
    assert!(
        opened_fifo > 0,
        "no call opened the FIFO: the test did not test"
    );
    let mut other = home.session();
    assert_eq!(other.call_tool("version", json!({}))["isError"], false);
}

/// Whether `pid` is gone (or only its zombie is left, which no one may reap here).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        state.starts_with('Z') || state.starts_with('X')
    })
}

#[cfg(target_os = "linux")]
#[test]
fn precommit_git_gets_a_cleared_environment_and_its_group_dies_with_the_call() {
    let mut home = ZenHome::new();
    // A git that writes down its environment, leaves a child behind, and hangs.
    let bin = home.path().join("bin");
    let seen = home.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    script(
        &bin.join("git"),
        &format!(
            "umask > '{seen}/umask'; env > '{seen}/env'\n\
             sleep 600 &\necho $! > '{seen}/child.tmp'; mv '{seen}/child.tmp' '{seen}/child'\nwait",
            seen = seen.display()
        ),
    );
    home.env.push((
        "PATH".into(),
        format!("{}:{}", bin.display(), crate::support::host_path()),
    ));
    // What zend's own environment holds: git variables a repository's
    // neighbour could set, and a provider key.
    home.env
        .push(("GIT_CONFIG_PARAMETERS".into(), "'core.pager=evil'".into()));
    home.env.push(("GIT_DIR".into(), "/nonexistent".into()));
    home.env
        .push(("OPENAI_API_KEY".into(), crate::support::FAKE_KEY.into()));
    // Started under the usual login umask, which git gets back (zend's own is 077).
    let mut daemon = home
        .command(Path::new("sh"))
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve")
        .arg(zend_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + WAIT;
    while home.zend(&["status"]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < until, "zend never answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut client = home.session();
    let id = client.send_tool_call(
        "precommit",
        json!({"step": "check", "step_number": 1, "total_steps": 1,
               "next_step_required": false, "findings": "f", "path": project,
               "model": "gpt-5"}),
    );
    let until = std::time::Instant::now() + WAIT;
    let child = loop {
        if let Ok(text) = std::fs::read_to_string(seen.join("child"))
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            break pid;
        }
        assert!(std::time::Instant::now() < until, "git never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let env = std::fs::read_to_string(seen.join("env")).unwrap();
    let umask = std::fs::read_to_string(seen.join("umask")).unwrap();
    client.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id}}),
    );
    let until = std::time::Instant::now() + WAIT;
    while !gone(child) {
        if std::time::Instant::now() > until {
            crate::support::kill9(child);
            panic!("git's child outlived the cancelled call");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The session goes on.
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    drop(client);
    crate::support::stop_child_daemon(&home, &mut daemon);

    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(
        !env.contains(crate::support::FAKE_KEY),
        "git got a key: {env}"
    );
    for name in [
        "GIT_CONFIG_PARAMETERS",
        "GIT_DIR",
        "OPENAI_API_KEY",
        "ZEN_HOME",
    ] {
        assert!(!names.contains(&name), "git got {name}: {env}");
    }
    assert!(names.contains(&"GIT_NO_LAZY_FETCH"), "{env}");
    assert_eq!(umask.trim(), "0022", "git runs with the user's umask");
}

#[test]
fn one_call_reads_at_most_64_mib_of_files() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    // Each turn names a tree of 2,000 files of 8 KiB (sparse: no disk); every
    // turn re-reads the files of the turns before it, sniffing each before it
    // is skipped as binary. By turn 5 that is 80 MB, over what one call may read.
    let capped = "this call already read 64 MiB of files, the most one call reads";
    let mut client = home.session();
    let mut continuation = Value::Null;
    for turn in 0..5 {
        let tree = home.path().join(format!("tree{turn}"));
        std::fs::create_dir_all(&tree).unwrap();
        for n in 0..2_000 {
            std::fs::File::create(tree.join(format!("{n:04}.bin")))
                .unwrap()
                .set_len(8192)
                .unwrap();
        }
        let (text, is_error) = call(
            &mut client,
            "chat",
            json!({"prompt": "summarise", "model": "gpt-5", "absolute_file_paths": [tree],
                   "continuation_id": continuation}),
        );
        assert!(!is_error, "{}", &text[..text.len().min(2000)]);
        let body = mock.requests().last().unwrap().body.to_string();
        if turn < 3 {
            assert!(!body.contains(capped), "turn {turn} read under 64 MiB");
        } else if body.contains(capped) {
            return;
        }
        continuation = json!(continuation_id(&text));
    }
    panic!("80 MB of files were read in one call");
}

#[test]
fn http_bodies_up_to_16_mib_are_served_larger_ones_refused_and_the_session_goes_on() {
    let home = ZenHome::new();
    let mut session = HttpSession::start(&home);
    // Under the limit (and over rmcp's own default of 4 MiB): served.
    let padding = "x".repeat(5 << 20);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":98,"method":"tools/call","params":{{"name":"version","arguments":{{"padding":"{padding}"}}}}}}"#
    );
    let (status, text) = session.post_raw(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"id\":98") && text.contains("\"isError\":false"),
        "{text}"
    );
    let padding = "x".repeat(17 << 20);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{{"name":"version","arguments":{{"padding":"{padding}"}}}}}}"#
    );
    match session.post_raw(body) {
        Ok((status, text)) => {
            assert_eq!(status, 413, "{}", &text[..text.len().min(300)]);
            assert!(text.contains("at most 16777216 bytes"), "{text}");
            eprintln!("413: {text}");
        }
        // zend answered 413 and closed before reading the rest of the body.
        Err(e) => eprintln!("the oversized request ended with: {e}"),
    }
    let result = session.call_tool("version", json!({}));
    assert_eq!(result["isError"], false, "{result}");
}

#[test]
fn http_sessions_beyond_max_sessions_are_refused_with_a_message() {
    let home = ZenHome::new();
    home.write_config("server.yaml", "max_sessions: 1\n");
    let mut first = HttpSession::start(&home);
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "zen-security-e2e", "version": "1.0"}}});
    let (status, text) = first.post_new_session(initialize.to_string());
    assert_ne!(status, 200, "{text}");
    assert!(text.contains("max_sessions"), "{status}: {text}");
    assert_eq!(first.call_tool("version", json!({}))["isError"], false);
}
