//! Crashes, restarts, upgrades, shutdown, access and hostile input: the
//! session survives what it should and says clearly when it cannot.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, last_user_text};
use crate::support::{
    McpClient, WAIT, ZenHome, kill9, ok_text, pid_from_version, result_text, shim_bin, wait_until,
    wait_within, zend_bin,
};

/// The test hook that makes a shim report another version (see the shim's main.rs).
const VERSION_OVERRIDE: &str = "ZEN_SHIM_VERSION_OVERRIDE";

fn version_pid(client: &mut McpClient) -> u32 {
    pid_from_version(&ok_text(&client.call_tool("version", json!({}))))
}

/// `version`, retried once if the daemon restarted under the call, as the
/// restart error invites.
fn version_pid_retrying(client: &mut McpClient) -> u32 {
    let response = client.request("tools/call", json!({"name": "version", "arguments": {}}));
    if response["error"]["code"] == -32603 {
        return version_pid(client);
    }
    pid_from_version(&result_text(&response["result"]))
}

/// A shim that says it is version 99.0.0.
fn newer_shim(home: &ZenHome) -> McpClient {
    let mut command = home.command(&shim_bin());
    command.env(VERSION_OVERRIDE, "99.0.0");
    McpClient::spawn(command)
}

fn signal(pid: u32, name: &str) {
    let _ = crate::support::signal(pid, name);
}

/// Whether zend's log (every zend of `home` writes the same files) has a line
/// containing `needle`.
fn logged(home: &ZenHome, needle: &str) -> bool {
    std::fs::read_dir(home.path().join("state"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|log| log.contains(needle)))
}

/// What a zend logs when a newer shim connects and it decides not to retire:
/// it already did once for that version, or a service manager runs it.
const RETIRED_ONCE_ALREADY: &str = "a restart for it already happened once";
const SERVICE_NEVER_RETIRES: &str = "restart zend's service to upgrade it";

/// `zend status --json`, or null when nothing (or a dying zend) answers.
fn status_json(home: &ZenHome) -> Value {
    serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap_or(Value::Null)
}

/// `zend serve` started by hand (as a service manager would), once it answers.
fn serve_by_hand(home: &ZenHome) -> Child {
    let child = home
        .command(&zend_bin())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("zend serve to answer", || {
        home.zend(&["status"]).status.success()
    });
    child
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn eight_sessions_carry_on_after_kill9_without_reinitializing() {
    let home = ZenHome::new();
    let mut clients: Vec<McpClient> = (0..8).map(|_| home.session()).collect();
    let old_pid = version_pid(&mut clients[0]);
    for client in &mut clients[1..] {
        assert_eq!(version_pid(client), old_pid);
    }

    kill9(old_pid);
    // Every shim reconnects on its own, before its client sends anything.
    wait_until("the 8 sessions to reach a new zend", || {
        let status = status_json(&home);
        status["pid"]
            .as_u64()
            .is_some_and(|pid| pid != u64::from(old_pid))
            && status["sessions"].as_array().is_some_and(|s| s.len() == 8)
    });
    let pids: Vec<u32> = clients.iter_mut().map(version_pid).collect();
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_ne!(pids[0], old_pid);
    assert_eq!(home.zend_pids(), vec![pids[0]]);

    // The new daemon knows every session by its replayed initialize.
    let status = status_json(&home);
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 8, "{status}");
    assert!(
        sessions.iter().all(|s| s["client_name"] == "zen-e2e"),
        "{status}"
    );
    for client in clients {
        assert!(
            client.notifications.is_empty(),
            "{:?}",
            client.notifications
        );
        assert!(client.close().success());
    }
}

#[test]
fn a_call_in_flight_when_zend_dies_gets_a_retryable_error() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        delay: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let old_pid = version_pid(&mut client);
    let id = client.next_request_id();
    client.send(&json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": "a slow question"}}
    }));
    wait_until("the chat call to reach the provider", || {
        !mock.completions().is_empty()
    });
    kill9(old_pid);

    let response = client.response_to(id);
    assert_eq!(response["error"]["code"], -32603, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("restarted") && message.contains("retried"),
        "{message}"
    );
    assert_eq!(response["error"]["data"]["retryable"], true);

    let new_pid = version_pid(&mut client);
    assert_ne!(new_pid, old_pid);
    assert!(client.close().success());
}

#[test]
fn sigterm_flushes_removes_the_socket_and_live_shims_say_stopped() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "noted".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut first = home.session();
    let mut second = home.session();
    let text = ok_text(&first.call_tool("chat", json!({"prompt": "Remember PELICAN."})));
    let start = text.find("continuation_id: ").unwrap() + "continuation_id: ".len();
    let thread: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    let pid = version_pid(&mut second);

    signal(pid, "TERM");
    for client in [&mut first, &mut second] {
        assert!(!client.wait().success());
        let stderr = client.stderr();
        assert!(
            stderr.contains("stopped") && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
    // A stopped zend is not resurrected by the shims that were using it: they
    // have exited, and a zend one had started would be running by then (a shim
    // spawns it directly), so no zend now means none later.
    assert!(home.wait_no_daemon(Duration::from_secs(10)));
    assert!(!home.socket().exists(), "zend removes its socket");

    // What the session was told is on disk: the conversation continues.
    let mut next = home.session();
    let result = next.call_tool(
        "chat",
        json!({"prompt": "Which word?", "continuation_id": thread}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    let sent = last_user_text(&mock.completions().last().unwrap().body);
    assert!(sent.contains("PELICAN"), "{sent}");
    assert!(next.close().success());
}

#[test]
fn the_socket_directory_is_0700_and_the_socket_0600() {
    let home = ZenHome::new();
    let mut client = home.session();
    version_pid(&mut client);
    assert_eq!(mode_of(&home.path().join("run")), 0o700);
    assert_eq!(mode_of(&home.socket()), 0o600);
    assert!(client.close().success());
}

#[test]
fn a_newer_shim_replaces_an_auto_started_daemon_once_older_sessions_end() {
    let home = ZenHome::new();
    let mut older = home.session();
    let old_pid = version_pid(&mut older);
    let mut newer = newer_shim(&home);
    newer.initialize();
    // Served by the old daemon while an older session remains.
    assert_eq!(version_pid(&mut newer), old_pid);
    let status = status_json(&home);
    assert_eq!(
        status["version_skew"][0]["shim_version"], "99.0.0",
        "{status}"
    );

    assert!(older.close().success());
    assert!(home.wait_no_daemon_pid(old_pid, Duration::from_secs(15)));
    let new_pid = version_pid_retrying(&mut newer);
    assert_ne!(new_pid, old_pid);

    // The new zend is no newer than the old one here; it must not retire again.
    // It decides as the newer shim's session opens, before serving it (and logs
    // it): a zend that does not retire then never does for that session.
    wait_until("the new zend to decide against a second restart", || {
        logged(&home, RETIRED_ONCE_ALREADY)
    });
    assert_eq!(version_pid(&mut newer), new_pid);
    assert_eq!(home.zend_pids(), vec![new_pid]);
    let record = std::fs::read_to_string(home.path().join("run/zend.upgrade")).unwrap();
    assert_eq!(record.trim(), "99.0.0");
    assert!(newer.close().success());
}

#[test]
fn a_newer_shim_alone_restarts_the_daemon_at_most_once() {
    let home = ZenHome::new();
    let mut newer = newer_shim(&home);
    newer.initialize();
    version_pid_retrying(&mut newer);
    // The first zend retires for the newer shim; the one the shim starts then
    // decides (as the shim's session opens, before serving it) not to.
    wait_until("the second zend to decide against a second restart", || {
        logged(&home, RETIRED_ONCE_ALREADY)
    });
    let second = version_pid_retrying(&mut newer);
    assert_eq!(version_pid(&mut newer), second, "no restart loop");
    wait_until("the first zend to be gone", || home.zend_pids() == [second]);
    assert!(home.path().join("run/zend.upgrade").exists());
    assert!(newer.close().success());
}

#[test]
fn a_service_managed_daemon_only_reports_version_skew() {
    let mut home = ZenHome::new();
    home.env.push(("ZEN_NO_AUTOSTART".into(), "1".into()));
    let mut daemon = serve_by_hand(&home);
    let mut newer = newer_shim(&home);
    newer.initialize();
    assert_eq!(version_pid(&mut newer), daemon.id());
    // Decided as the session opened, before it was served (and logged): a
    // service's zend only warns, and goes on serving.
    wait_until("zend to note the newer shim", || {
        logged(&home, SERVICE_NEVER_RETIRES)
    });
    assert_eq!(version_pid(&mut newer), daemon.id());

    let status = status_json(&home);
    assert_eq!(status["auto_started"], false);
    assert_eq!(
        status["version_skew"][0]["shim_version"], "99.0.0",
        "{status}"
    );
    let table = String::from_utf8(home.zend(&["status"]).stdout).unwrap();
    assert!(
        table.contains("skew") && table.contains("99.0.0") && table.contains("service"),
        "{table}"
    );
    assert!(!home.path().join("run/zend.upgrade").exists());
    assert!(newer.close().success());
    home.stop_daemon();
    wait_within(&mut daemon, WAIT, "zend serve");
}

#[test]
fn without_autostart_a_shim_waits_for_the_service_to_bring_zend_back() {
    let mut home = ZenHome::new();
    home.env.push(("ZEN_NO_AUTOSTART".into(), "1".into()));
    let mut first = serve_by_hand(&home);
    let mut client = home.session();
    assert_eq!(version_pid(&mut client), first.id());
    kill9(first.id());
    wait_within(&mut first, WAIT, "the killed zend");
    let mut second = serve_by_hand(&home);
    assert_eq!(version_pid(&mut client), second.id());
    assert!(client.close().success());
    home.stop_daemon();
    wait_within(&mut second, WAIT, "zend serve");
}

#[test]
fn a_shim_gives_up_on_a_daemon_that_keeps_dying() {
    let home = ZenHome::new();
    let mut client = home.session();
    for _ in 0..6 {
        let pid = version_pid_retrying(&mut client);
        kill9(pid);
        assert!(home.wait_no_daemon_pid(pid, Duration::from_secs(5)));
        wait_until("the shim to reconnect or give up", || {
            client.try_wait().is_some() || {
                let status = status_json(&home);
                status["pid"].as_u64().is_some_and(|p| p != u64::from(pid))
                    && status["sessions"].as_array().is_some_and(|s| s.len() == 1)
            }
        });
        if client.try_wait().is_some() {
            break;
        }
    }
    assert!(!client.wait().success());
    let stderr = client.stderr();
    assert!(stderr.contains("giving up"), "{stderr}");
}

/// One case of `tests/corpus/protocol.jsonl` (the format is in its README).
struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Value,
    id: Option<Value>,
    eof: bool,
}

fn load_corpus() -> Vec<Case> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/protocol.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let case: Value = serde_json::from_str(line).unwrap();
            let bytes = if let Some(text) = case["send"].as_str() {
                text.as_bytes().to_vec()
            } else if let Some(hex) = case["send_hex"].as_str() {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect()
            } else {
                let mut bytes = Vec::new();
                for part in case["send_parts"].as_array().unwrap() {
                    let text = part[0].as_str().unwrap();
                    for _ in 0..part[1].as_u64().unwrap() {
                        bytes.extend_from_slice(text.as_bytes());
                    }
                }
                bytes
            };
            Case {
                name: case["name"].as_str().unwrap().to_owned(),
                bytes,
                expect: case["expect"].clone(),
                id: case.get("id").cloned(),
                eof: case["eof"] == true,
            }
        })
        .collect()
}

/// What is wrong with `reply` as the answer to `case`, if anything.
fn judge(case: &Case, reply: &Value) -> Option<String> {
    let ok = match &case.expect {
        Value::String(s) if s == "result" => reply.get("result").is_some(),
        Value::Number(code) => {
            reply["error"]["code"].as_i64() == code.as_i64()
                && reply["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
        }
        _ => false,
    };
    (!ok).then(|| format!("{}: expected {}, got {reply}", case.name, case.expect))
}

/// Matches replies to cases. Replies that carry an id may come late (zend
/// runs requests concurrently), so they are matched by id; a reply with a null
/// id answers the case just sent.
struct Tally<'a> {
    cases: &'a [Case],
    by_id: HashMap<String, usize>,
    answered: Vec<bool>,
    problems: Vec<String>,
}

impl<'a> Tally<'a> {
    fn new(cases: &'a [Case]) -> Self {
        let mut by_id = HashMap::new();
        for (n, case) in cases.iter().enumerate() {
            if let Some(id) = case.id.as_ref().filter(|id| !id.is_null()) {
                assert!(
                    by_id.insert(id.to_string(), n).is_none(),
                    "duplicate id {id}"
                );
            }
        }
        Self {
            cases,
            by_id,
            answered: vec![false; cases.len()],
            problems: Vec::new(),
        }
    }

    fn take(&mut self, reply: Value, current: usize) {
        if reply.get("method").is_some() {
            return; // a notification from zend
        }
        let n = match &reply["id"] {
            Value::Null => current,
            id => match self.by_id.get(&id.to_string()) {
                Some(n) => *n,
                None => {
                    self.problems.push(format!("unexpected reply {reply}"));
                    return;
                }
            },
        };
        let case = &self.cases[n];
        if case.expect == "no reply" || self.answered[n] {
            self.problems
                .push(format!("{}: unexpected reply {reply}", case.name));
            return;
        }
        self.problems.extend(judge(case, &reply));
        self.answered[n] = true;
    }

    /// A case whose reply (matched by id) has not come yet.
    fn awaited(&self) -> Option<usize> {
        (0..self.cases.len()).find(|n| {
            let case = &self.cases[*n];
            !self.answered[*n] && case.expect != "no reply" && case.id.is_some()
        })
    }
}

#[test]
fn the_hostile_corpus_gets_clear_errors_and_hurts_no_one() {
    let cases = load_corpus();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let home = ZenHome::new();
    let mut bystander = home.session();
    let pid = version_pid(&mut bystander);
    let mut client = home.session();

    let mut tally = Tally::new(&cases);
    for (n, case) in cases.iter().enumerate() {
        let mut line = case.bytes.clone();
        if case.eof {
            assert_eq!(n, cases.len() - 1, "the eof case comes last");
            client.send_raw(&line);
            client.close_stdin();
            break;
        }
        line.push(b'\n');
        client.send_raw(&line);
        let sentinel = format!("sentinel-{n}");
        client.send(&json!({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}));
        loop {
            let reply = client.recv();
            if reply["id"] == sentinel.as_str() {
                break;
            }
            tally.take(reply, n);
        }
        if case.id == Some(Value::Null) && !tally.answered[n] {
            tally
                .problems
                .push(format!("{}: no reply before the next case", case.name));
        }
    }
    // Late replies, and the answer to the line left without a newline at EOF.
    while let Some(n) = tally.awaited() {
        match client.try_recv(WAIT) {
            Some(reply) => tally.take(reply, cases.len() - 1),
            None => {
                tally
                    .problems
                    .push(format!("{}: never answered", cases[n].name));
                tally.answered[n] = true;
            }
        }
    }
    let problems = tally.problems;
    assert!(client.wait().success(), "{}", client.stderr());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The daemon is the same one, and the other session never noticed.
    assert_eq!(home.zend_pids(), vec![pid]);
    assert_eq!(version_pid(&mut bystander), pid);
    assert!(bystander.close().success());
}

/// The tool-level half of the hostile corpus: `tests/corpus/tools.jsonl`, one
/// `tools/call` per line (`name`, `tool`, `arguments`, `expect`: "error" or
/// "ok", `contains`: what the answer must say, required, so that a case fails
/// when its error turns into another one). `$TMP`, `$HOME`, `$MANY_ARGS`, `$BIG_PROMPT`
/// and `$OTHER_THREAD` are filled in with fixtures made here.
#[test]
fn the_tool_corpus_gets_clear_errors_and_hurts_no_one() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/tools.jsonl"),
    )
    .unwrap();
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let protocol = load_corpus().len();
    assert!(
        protocol + cases.len() >= 200,
        "{} cases in all",
        protocol + cases.len()
    );

    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let fixtures = tempfile::tempdir().unwrap();
    let tmp = fixtures.path();
    std::fs::write(tmp.join("blob.bin"), [0u8, 159, 146, 150, 0, 1]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tmp.join("link-to-passwd")).unwrap();
    let _ = crate::support::try_output_within(
        Command::new("mkfifo").arg(tmp.join("fifo")),
        crate::support::COMMAND_DEADLINE,
    );
    std::fs::create_dir_all(tmp.join("dir-prompt/prompt.txt")).unwrap();
    std::fs::create_dir_all(tmp.join("many")).unwrap();
    for i in 0..100_000 {
        std::fs::write(tmp.join("many").join(format!("f{i}.txt")), b"x").unwrap();
    }
    let many_args: Vec<String> = (0..10_000)
        .map(|i| format!("{}/f{i}.rs", tmp.display()))
        .collect();
    let big_prompt = "z".repeat(10 * 1024 * 1024);

    let mut bystander = home.session();
    let pid = version_pid(&mut bystander);
    let other = bystander.call_tool(
        "chat",
        json!({"prompt": "someone else's conversation", "model": "gpt-5"}),
    );
    let other_text = ok_text(&other);
    let start = other_text.find("continuation_id: ").unwrap() + "continuation_id: ".len();
    let other_thread = other_text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let fill = |value: &Value| -> Value {
        match value {
            Value::String(s) if s == "$MANY_ARGS" => json!(many_args),
            Value::String(s) if s == "$BIG_PROMPT" => json!(big_prompt),
            Value::String(s) => json!(
                s.replace("$TMP", &tmp.display().to_string())
                    .replace("$HOME", &home.path().display().to_string())
                    .replace("$OTHER_THREAD", &other_thread)
            ),
            other => other.clone(),
        }
    };
    let mut client = home.session();
    let mut problems = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut arguments = serde_json::Map::new();
        for (key, value) in case["arguments"].as_object().unwrap() {
            let filled = match value {
                Value::Array(items) => Value::Array(items.iter().map(&fill).collect()),
                other => fill(other),
            };
            arguments.insert(key.clone(), filled);
        }
        let reply = client.request(
            "tools/call",
            json!({"name": case["tool"], "arguments": arguments}),
        );
        let (is_error, text) = match reply.get("result") {
            Some(result) => (result["isError"] == true, result_text(result)),
            None => (
                true,
                reply["error"]["message"].as_str().unwrap_or("").to_owned(),
            ),
        };
        let expect_error = case["expect"] == "error";
        if case["contains"].as_str().is_none_or(str::is_empty) {
            problems.push(format!(
                "{name}: names no expected answer or error (`contains`)"
            ));
        } else if is_error != expect_error {
            problems.push(format!(
                "{name}: expected {}, got {}",
                case["expect"],
                &text[..text.len().min(300)]
            ));
        } else if let Some(needle) = case["contains"].as_str()
            && !text.to_lowercase().contains(&needle.to_lowercase())
        {
            problems.push(format!(
                "{name}: answer lacks {needle:?}: {}",
                &text[..text.len().min(300)]
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Same daemon, and the other session never noticed.
    assert_eq!(version_pid(&mut bystander), pid);
    assert_eq!(version_pid(&mut client), pid);
}
