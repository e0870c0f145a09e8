//! Configuration edits applied to a running zend (#37): the watcher, `zend
//! reload`, a broken edit that changes nothing, tools/list_changed, and a call
//! that runs across a reload. Every wait is on a condition with a deadline.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{FAKE_KEY, McpClient, WAIT, ZenHome, result_text};

/// A home whose OpenAI traffic goes to `mock`; DeepSeek is not configured.
fn openai_only(mock: &MockProvider) -> ZenHome {
    let mut home = ZenHome::new();
    home.env.push(("OPENAI_API_KEY".into(), FAKE_KEY.into()));
    home.env.push(("OPENAI_BASE_URL".into(), mock.v1()));
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n",
    );
    home
}

fn status(home: &ZenHome) -> Value {
    let out = home.zend(&["status", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("zend status --json: {e}: {out:?}"))
}

/// Waits until zend has loaded its configuration `loads` times (the watcher's reloads).
fn wait_for_loads(home: &ZenHome, loads: u64) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let status = status(home);
        if status["config"]["loads"].as_u64().unwrap_or(0) >= loads {
            return status;
        }
        assert!(
            Instant::now() < until,
            "zend did not reload within {WAIT:?}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chat(client: &mut McpClient, model: &str) -> Value {
    client.call_tool("chat", json!({"prompt": "hello", "model": model}))
}

#[test]
fn a_key_added_to_dotenv_applies_to_the_next_call() {
    let mock = MockProvider::start();
    let mut home = openai_only(&mock);
    let mut client = home.session();
    let pid = home.daemon_pid();
    let before = chat(&mut client, "deepseek-chat");
    assert_eq!(before["isError"], true, "{before}");
    assert!(
        result_text(&before).contains("not configured"),
        "{}",
        result_text(&before)
    );

    // The user adds the key to zen's .env; nobody restarts anything.
    home.env.push(("DEEPSEEK_API_KEY".into(), FAKE_KEY.into()));
    home.env.push(("DEEPSEEK_BASE_URL".into(), mock.v1()));
    home.write_config(".env", "# DeepSeek added while zend runs\n");
    wait_for_loads(&home, 2);

    let after = chat(&mut client, "deepseek-chat");
    assert_eq!(after["isError"], false, "{}", result_text(&after));
    assert_eq!(mock.completions_for("deepseek-chat"), 1);
    assert_eq!(home.daemon_pid(), pid, "the same zend answered");
    let doctor = home.zend(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let deepseek = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "deepseek")
        .unwrap();
    assert_eq!(deepseek["configured"], true, "{deepseek}");
    assert_eq!(deepseek["key_source"], ".env", "{deepseek}");
    assert!(deepseek["pending"].is_null(), "{deepseek}");
    drop(client);
    home.stop_daemon();
}

#[test]
fn a_broken_models_yaml_changes_nothing_and_says_where() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\nmodels:\n  mine: provider: openai\n",
    );
    let out = home.zend(&["reload"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("models.yaml:4"), "{stdout}");
    assert!(stdout.contains("previous one stays"), "{stdout}");

    // The old models still answer, in the same session.
    let answer = chat(&mut client, "gpt-5");
    assert_eq!(answer["isError"], false, "{}", result_text(&answer));
    // A call the stale configuration fails names the reason.
    let missing = chat(&mut client, "mine");
    assert_eq!(missing["isError"], true);
    assert!(
        result_text(&missing).contains("models.yaml:4"),
        "{}",
        result_text(&missing)
    );
    let status_text = String::from_utf8_lossy(&home.zend(&["status"]).stdout).into_owned();
    assert!(
        status_text.contains("NOT RELOADED") && status_text.contains("models.yaml:4"),
        "{status_text}"
    );
    let doctor = home.zend(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&doctor.stdout).contains("still runs the previous one"),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    assert!(
        client.daemon_log().contains("configuration not reloaded"),
        "the log says so"
    );

    // Fixed: the reload goes through and the error is gone.
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n",
    );
    let out = home.zend(&["reload", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(status(&home)["config"]["error"].is_null());
    drop(client);
    home.stop_daemon();
}

#[test]
fn disabling_a_tool_tells_every_session() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.shim();
    let init = client.initialize();
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"], true,
        "{init}"
    );
    assert!(client.tool_names().contains(&"planner"));

    home.write_config("server.yaml", "disabled_tools: [planner]\n");
    let until = Instant::now() + WAIT;
    let seen = loop {
        if client
            .notifications
            .iter()
            .any(|n| n["method"] == "notifications/tools/list_changed")
        {
            break true;
        }
        let left = until.saturating_duration_since(Instant::now());
        match client.try_recv(left) {
            Some(message) if message["method"] == "notifications/tools/list_changed" => {
                break true;
            }
            Some(other) => client.notifications.push(other),
            None => break false,
        }
    };
    assert!(
        seen,
        "no tools/list_changed; zend's log:\n{}",
        client.daemon_log()
    );
    let names = client.tool_names();
    assert!(!names.contains(&"planner"), "{:?}", names.0);
    assert!(names.contains(&"chat"));
    let refused = client.request("tools/call", json!({"name": "planner", "arguments": {}}));
    assert!(refused.get("error").is_some(), "{refused}");
    drop(client);
    home.stop_daemon();
}

#[test]
fn a_call_running_during_a_reload_completes_with_its_configuration() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "answered across a reload".into(),
        ..Behaviour::default()
    });
    mock.hold();
    let mut home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let id = client.send_tool_call("chat", json!({"prompt": "slow", "model": "gpt-5"}));
    assert!(
        mock.wait_in_flight(1, WAIT),
        "the upstream call never started"
    );

    // OpenAI now points nowhere: new calls see that, the running one does not.
    for (key, value) in &mut home.env {
        if key == "OPENAI_BASE_URL" {
            *value = MockProvider::refused_v1();
        }
    }
    home.write_config(".env", "# OpenAI moved\n");
    let out = home.zend(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(status(&home)["in_flight_calls"], 1);

    mock.release();
    let response = client.response_to(id);
    let result = &response["result"];
    assert_eq!(result["isError"], false, "{response}");
    assert!(result_text(result).contains("answered across a reload"));
    let after = chat(&mut client, "gpt-5");
    assert_eq!(after["isError"], true, "the new configuration is in force");
    drop(client);
    home.stop_daemon();
}

#[test]
fn reload_without_a_daemon_says_so() {
    let home = ZenHome::new();
    let out = home.zend(&["reload"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
}
