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

#[test]
fn sighup_reloads_the_configuration() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let pid = home.daemon_pid().expect("zend's pid");
    let before = status(&home)["config"]["loads"].as_u64().unwrap();
    assert!(crate::support::signal(pid, "HUP"));
    wait_for_loads(&home, before + 1);
    assert_eq!(home.daemon_pid(), Some(pid), "SIGHUP does not stop zend");
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    drop(client);
    home.stop_daemon();
}

#[test]
fn a_key_only_in_zends_own_environment_needs_a_restart_and_doctor_says_so() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let secret = "gsk-e2e-environment-only-4d2b";
    // zend started by hand, with a key in its own environment only.
    let mut serve = home.command(&crate::support::zend_bin());
    serve
        .args(["serve"])
        .env("GROQ_API_KEY", secret)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut zend = serve.spawn().unwrap();
    let until = Instant::now() + WAIT;
    while !home.zend(&["status"]).status.success() {
        assert!(Instant::now() < until, "zend serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = home.zend(&["doctor", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains(secret), "no key value in doctor's output");
    let report: Value = serde_json::from_str(&text).unwrap();
    let groq = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "groq")
        .unwrap();
    assert_eq!(groq["key_source"], "environment", "{groq}");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("GROQ_API_KEY")
            && warnings.contains("set in zend's own environment")
            && warnings.contains("zend stop"),
        "{warnings}"
    );
    home.stop_daemon();
    crate::support::wait_within(&mut zend, WAIT, "zend serve");
}

/// The `authorization` header of the last completion request for `model`.
fn last_authorization(mock: &MockProvider, model: &str) -> String {
    mock.completions()
        .iter()
        .rev()
        .find(|r| r.body["model"] == model)
        .and_then(|r| {
            r.headers
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.clone())
        })
        .unwrap_or_default()
}

fn set_env(home: &mut ZenHome, key: &str, value: Option<&str>) {
    home.env.retain(|(k, _)| k != key);
    if let Some(value) = value {
        home.env.push((key.into(), value.into()));
    }
}

#[test]
fn a_key_changed_then_removed_in_dotenv_applies_on_reload() {
    let mock = MockProvider::start();
    let mut home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let first = chat(&mut client, "deepseek-chat");
    assert_eq!(first["isError"], false, "{}", result_text(&first));
    assert_eq!(
        last_authorization(&mock, "deepseek-chat"),
        format!("Bearer {FAKE_KEY}")
    );

    // Changed: the next call carries the new key.
    let rotated = "sk-zen-e2e-rotated-key-91be";
    set_env(&mut home, "DEEPSEEK_API_KEY", Some(rotated));
    home.write_config(".env", "# DeepSeek key rotated\n");
    wait_for_loads(&home, 2);
    let second = chat(&mut client, "deepseek-chat");
    assert_eq!(second["isError"], false, "{}", result_text(&second));
    assert_eq!(
        last_authorization(&mock, "deepseek-chat"),
        format!("Bearer {rotated}")
    );

    // Removed: DeepSeek is no longer configured, and the call says what to set.
    set_env(&mut home, "DEEPSEEK_API_KEY", None);
    home.write_config(".env", "# DeepSeek key removed\n");
    wait_for_loads(&home, 3);
    let third = chat(&mut client, "deepseek-chat");
    assert_eq!(third["isError"], true, "{third}");
    let text = result_text(&third);
    assert!(
        text.contains("not configured") && text.contains("DEEPSEEK_API_KEY"),
        "{text}"
    );
    assert_eq!(mock.completions_for("deepseek-chat"), 2);
    drop(client);
    home.stop_daemon();
}

/// The doctor row of provider `name` (`"  ok  openai      configured: ..."`).
fn provider_row<'a>(doctor: &'a str, name: &str) -> &'a str {
    doctor
        .lines()
        .find(|line| {
            line.trim_start()
                .get(4..)
                .is_some_and(|rest| rest.split_whitespace().next() == Some(name))
        })
        .unwrap_or_else(|| panic!("no row for {name} in:\n{doctor}"))
}

#[test]
fn doctors_provider_rows_say_one_thing_each() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let client = home.session();
    // A broken models.yaml keeps a key added beside it from loading.
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\nmodels:\n  mine: provider: openai\n",
    );
    assert_eq!(home.zend(&["reload"]).status.code(), Some(1));
    let secret = "g-e2e-pending-key-5c1e";
    home.write_config(".env", &format!("GEMINI_API_KEY={secret}\n"));

    let out = home.zend(&["doctor"]);
    let doctor = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!doctor.contains(secret), "no key value: {doctor}");
    assert_eq!(
        provider_row(&doctor, "openai").trim(),
        "ok  openai      configured: OPENAI_API_KEY from zen's .env"
    );
    let gemini = provider_row(&doctor, "gemini");
    assert!(
        gemini
            .trim()
            .starts_with("!!  gemini      GEMINI_API_KEY set in .env but not loaded yet")
            && gemini.contains("models.yaml:4"),
        "{gemini}"
    );
    assert_eq!(
        provider_row(&doctor, "xai").trim(),
        "--  xai         not configured: no API key: set XAI_API_KEY"
    );
    for line in doctor.lines() {
        let said = [
            line.replace("not configured", "").contains("configured"),
            line.contains("not configured"),
            line.contains("not loaded yet"),
        ];
        assert!(
            said.iter().filter(|s| **s).count() <= 1,
            "one thing per row: {line}"
        );
    }
    drop(client);
    home.stop_daemon();
}

#[test]
fn the_systemd_unit_reloads_with_sighup() {
    let home = ZenHome::new();
    let out = home.zend(&["service", "install", "--print", "--manager", "systemd"]);
    assert!(out.status.success(), "{out:?}");
    let unit = String::from_utf8_lossy(&out.stdout);
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID\n"),
        "{unit}"
    );
}
