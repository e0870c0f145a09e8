//! The `zend` command line: models, threads, ask/consensus, doctor, exit codes.

use crate::support::OutputWithin;
use std::process::Output;

use serde_json::Value;

use crate::support::mock_provider::{Behaviour, MockProvider, last_user_text};
use crate::support::{FAKE_KEY, ZenHome, zend_bin};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            stdout(output),
            stderr(output)
        )
    })
}

/// The continuation_id `zend ask` printed on stderr.
fn continuation_id(output: &Output) -> String {
    let text = stderr(output);
    let start = text
        .find("continuation_id: ")
        .unwrap_or_else(|| panic!("no continuation_id on stderr: {text}"))
        + "continuation_id: ".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn models_json_lists_the_mock_configured_models_from_the_daemon_it_starts() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let output = home.zend(&["models", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = json(&output);
    let names: Vec<&str> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"gpt-5"), "{names:?}");
    let openai = listing["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap();
    assert_eq!(openai["configured"], true);
    assert!(
        !home.zend_pids().is_empty(),
        "`zend models` started a daemon"
    );

    let text = home.zend(&["models"]);
    assert!(text.status.success());
    assert!(stdout(&text).contains("- gpt-5"), "{}", stdout(&text));
    assert!(!stdout(&text).contains('\x1b'), "no colour when piped");
}

#[test]
fn ask_continues_and_threads_lists_and_shows_the_conversation() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "first answer".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("notes.txt"), "the bird is a PELICAN\n").unwrap();

    let first = home
        .command(&zend_bin())
        .current_dir(project.path())
        .args([
            "ask",
            "--model",
            "gpt-5",
            "--file",
            "notes.txt",
            "Remember the bird in my notes.",
        ])
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first).trim(), "first answer", "answer on stdout");
    let id = continuation_id(&first);
    let sent = last_user_text(&mock.completions()[0].body);
    assert!(
        sent.contains("PELICAN"),
        "relative --file taken from the cwd: {sent}"
    );

    mock.set(Behaviour {
        reply: "second answer".into(),
        ..Behaviour::default()
    });
    let second = home.zend(&["ask", "--continue", &id, "What was the bird?"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second).trim(), "second answer");
    assert_eq!(continuation_id(&second), id);
    let sent = last_user_text(&mock.completions()[1].body);
    assert!(
        sent.contains("Remember the bird in my notes.") && sent.contains("first answer"),
        "the second request carries the first turn: {sent}"
    );

    let listed = home.zend(&["threads", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let threads = json(&listed);
    let thread = threads
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {threads}"));
    assert_eq!(thread["turn_count"], 4);
    assert_eq!(
        thread["cwd"],
        project.path().to_string_lossy().as_ref(),
        "the thread records where it was started"
    );
    let filtered = json(&home.zend(&["threads", "--json", "--tool", "consensus"]));
    assert_eq!(filtered, serde_json::json!([]));

    let shown = home.zend(&["threads", "show", &id]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = stdout(&shown);
    for turn in [
        "Remember the bird in my notes.",
        "first answer",
        "What was the bird?",
        "second answer",
    ] {
        assert!(text.contains(turn), "{turn:?} missing: {text}");
    }
    let shown_json = json(&home.zend(&["threads", "show", &id, "--json"]));
    assert_eq!(shown_json["turns"].as_array().unwrap().len(), 4);

    let missing = home.zend(&["threads", "show", "5b0c4f3e-0000-4000-8000-000000000000"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("no conversation thread"));
}

#[test]
fn tool_errors_exit_4_and_no_autostart_exits_3() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let unknown = home.zend(&["ask", "--model", "no-such-model-zz", "hi"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no-such-model-zz"));
    assert!(mock.completions().is_empty());

    let other = ZenHome::new();
    let refused = other
        .command(&zend_bin())
        .env("ZEN_NO_AUTOSTART", "1")
        .args(["threads"])
        .output_within(crate::support::COMMAND_DEADLINE);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(other.zend_pids().is_empty());

    let usage = home.zend(&["consensus", "no models given"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn consensus_asks_each_model() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let output = home.zend(&[
        "consensus",
        "--model",
        "gpt-5:for",
        "--model",
        "gpt-5-mini:against",
        "Adopt sled?",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("mock answer"),
        "{}",
        stdout(&output)
    );
    assert!(stderr(&output).contains("continuation_id"));
    // Each participant once, with its stance, then the synthesis.
    let asked = mock.completions();
    assert_eq!(asked.len(), 3, "{asked:?}");
    let synthesis = last_user_text(&asked[2].body);
    assert!(
        synthesis.contains("--- gpt-5 (for) ---")
            && synthesis.contains("--- gpt-5-mini (against) ---"),
        "{synthesis}"
    );
    for (model, stance) in [("gpt-5", "SUPPORTIVE"), ("gpt-5-mini", "CRITICAL")] {
        let request = asked
            .iter()
            .find(|r| r.body["model"] == model)
            .unwrap_or_else(|| panic!("{model} was not asked: {asked:?}"));
        assert!(
            request
                .body
                .to_string()
                .contains(&format!("Your assigned stance: {stance}")),
            "{model}: {}",
            request.body
        );
    }
}

#[test]
fn doctor_names_key_variables_never_values_and_reports_broken_plugins() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "tools/x.yaml",
        "description: broken\nsystem_prompt: [unclosed\n",
    );

    // No daemon: doctor checks in-process and says so.
    let offline = home.zend(&["doctor", "--json"]);
    let everything = format!("{}{}", stdout(&offline), stderr(&offline));
    assert!(
        !everything.contains(FAKE_KEY),
        "the key leaked: {everything}"
    );
    assert_eq!(
        offline.status.code(),
        Some(1),
        "a broken plugin is a problem"
    );
    let report = json(&offline);
    assert_eq!(report["daemon"]["running"], false);
    assert_eq!(report["providers_checked_by"], "cli");
    let openai = provider(&report, "openai");
    assert_eq!(
        openai["key_vars_set"],
        serde_json::json!(["OPENAI_API_KEY"])
    );
    let problems = report["tool_problems"].to_string();
    assert!(
        problems.contains("tools/x.yaml:") && !problems.contains("tools/x.yaml:0"),
        "file:line: {problems}"
    );
    assert!(home.zend_pids().is_empty(), "doctor starts no daemon");

    // With a daemon: keys as zend sees them, socket health, and live calls.
    assert!(home.zend(&["models"]).status.success());
    let online = home.zend(&["doctor", "--json", "--live"]);
    let everything = format!("{}{}", stdout(&online), stderr(&online));
    assert!(
        !everything.contains(FAKE_KEY),
        "the key leaked: {everything}"
    );
    let report = json(&online);
    assert_eq!(report["daemon"]["running"], true);
    assert_eq!(report["daemon"]["socket_mode"], "600");
    assert_eq!(report["daemon"]["socket_dir_mode"], "700");
    assert_eq!(report["providers_checked_by"], "daemon");
    let openai = provider(&report, "openai");
    assert_eq!(
        openai["key_vars_set"],
        serde_json::json!(["OPENAI_API_KEY"])
    );
    assert_eq!(openai["live"]["ok"], true, "{openai}");
    assert!(provider(&report, "anthropic")["live"].is_null());
    assert!(
        report["tool_problems"]
            .to_string()
            .contains("tools/x.yaml:")
    );

    let text = home.zend(&["doctor"]);
    let text = format!("{}{}", stdout(&text), stderr(&text));
    assert!(!text.contains(FAKE_KEY));
    assert!(
        text.contains("OPENAI_API_KEY") && text.contains("tools/x.yaml:"),
        "{text}"
    );
}

fn provider<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no provider {name}: {report}"))
}
