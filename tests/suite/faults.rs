//! Provider faults end to end: a real shim session calls `chat` (and
//! `consensus`) against the mock provider scripted per model, one model per
//! fault. Each scenario checks what the client reads (the retried or fallback
//! answer, or an error that says what went wrong and what to do), how many
//! requests the mock saw, and that the ledger (`zend status --json`, the
//! Status RPC) holds exactly the tokens and cost the mock billed — failed
//! attempts that consumed nothing at $0.
//!
//! Secret hygiene on every path (provider 401/403, broken config, a missing
//! key, status, doctor, logs, the store) is the last test here.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, Mode};
use crate::support::{FAKE_KEY, McpClient, ZenHome, result_text};

/// $ per million tokens of every test model: 100 in / 20 out cost $0.14.
const PRICE_IN: f64 = 1000.0;
const PRICE_OUT: f64 = 2000.0;

fn fail(status: u16, body: &str) -> Behaviour {
    Behaviour {
        fail: Some((status, body.to_owned())),
        ..Behaviour::default()
    }
}

fn mode(mode: Mode) -> Behaviour {
    Behaviour {
        mode,
        ..Behaviour::default()
    }
}

fn ok(reply: &str) -> Behaviour {
    Behaviour {
        reply: reply.to_owned(),
        ..Behaviour::default()
    }
}

/// A home whose models.yaml defines one priced OpenAI-wire model per fault
/// (`extra` is YAML for each, keyed by name), with one retry, millisecond
/// backoffs and Retry-After honoured up to 1 s.
fn fault_home(mock: &MockProvider, models: &[(&str, &str)]) -> ZenHome {
    let home = ZenHome::with_mock(mock);
    let mut yaml = String::from(
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n  \
         retry_after_max_secs: 1\n  cooldown_failures: 0\nmodels:\n",
    );
    for (name, extra) in models {
        yaml.push_str(&format!(
            "  {name}:\n    provider: openai\n    prices: {{input: {PRICE_IN}, output: {PRICE_OUT}}}\n"
        ));
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("    {line}\n"));
        }
    }
    home.write_config("models.yaml", &yaml);
    home
}

fn chat(client: &mut McpClient, model: &str) -> (bool, String) {
    let result = client.call_tool("chat", json!({"prompt": "one question", "model": model}));
    let text = result_text(&result);
    // The answer follows the header line an answer starts with.
    let text = match text.split_once("\n\n") {
        Some((header, answer)) if header.starts_with("[zen] continuation_id: ") => {
            answer.to_owned()
        }
        _ => text,
    };
    (result["isError"] == true, text)
}

fn status_json(home: &ZenHome) -> Value {
    let out = home.zend(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Checks one model's all-time ledger row against what the mock billed.
fn assert_ledger_matches(
    mock: &MockProvider,
    ledger: &Value,
    model: &str,
    calls: u64,
    errors: u64,
) {
    let row = &ledger["all_time"]["by_model"][model];
    let billed = mock.billed(model);
    assert_eq!(row["calls"], calls, "{model} attempts recorded: {row}");
    assert_eq!(row["errors"], errors, "{model} failed attempts: {row}");
    assert_eq!(row["input_tokens"], billed.prompt_tokens, "{model}: {row}");
    assert_eq!(
        row["output_tokens"], billed.completion_tokens,
        "{model}: {row}"
    );
    let cost = (billed.prompt_tokens as f64 * PRICE_IN
        + billed.completion_tokens as f64 * PRICE_OUT)
        / 1e6;
    let recorded = row["cost_usd"].as_f64().unwrap();
    assert!(
        (recorded - cost).abs() < 1e-9,
        "{model}: ledger ${recorded}, billed ${cost}"
    );
    // Failed attempts that consumed nothing are known to be $0, not "unpriced".
    assert_eq!(row["unpriced_calls"], 0, "{model}: {row}");
}

#[test]
fn chat_retries_falls_back_or_reports_each_provider_fault_and_the_ledger_matches_the_bill() {
    let mock = MockProvider::start();
    let refused = MockProvider::refused_v1();
    let rate_limited = r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#;
    let home = fault_home(
        &mock,
        &[
            ("f-ok", ""),
            ("f-429-after", ""),
            ("f-429-always", ""),
            ("f-429-bare", ""),
            ("f-500", ""),
            ("f-502", ""),
            ("f-503", ""),
            ("f-503-down", "fallbacks: [f-backup]"),
            ("f-backup", ""),
            (
                "f-refused",
                &format!("base_url: {refused}\nfallbacks: [f-backup]"),
            ),
            ("f-refused-alone", &format!("base_url: {refused}")),
            ("f-timeout", "timeout_secs: 1"),
            ("f-stall", "timeout_secs: 1"),
            ("f-truncated", ""),
            ("f-billed-then-503", ""),
            ("f-bad-json", ""),
            ("f-closed", ""),
            ("f-401", ""),
            ("f-403", ""),
            ("f-policy", ""),
            ("f-long", "context_window_fallbacks: [f-wide]"),
            ("f-wide", ""),
            ("f-long-alone", ""),
        ],
    );
    let retry_later = |status: u16| {
        vec![
            fail(status, r#"{"error":{"message":"try later"}}"#),
            ok("recovered"),
        ]
    };
    let after = |seconds: &str| Behaviour {
        retry_after: Some(seconds.to_owned()),
        ..fail(429, rate_limited)
    };
    mock.script("f-429-after", vec![after("1"), ok("after waiting")]);
    mock.set_for_model("f-429-always", after("7"));
    mock.set_for_model("f-429-bare", fail(429, rate_limited));
    mock.script("f-500", retry_later(500));
    mock.script("f-502", retry_later(502));
    mock.script("f-503", retry_later(503));
    mock.set_for_model(
        "f-503-down",
        fail(503, r#"{"error":{"message":"overloaded"}}"#),
    );
    mock.set_for_model("f-backup", ok("the backup answers"));
    mock.set_for_model(
        "f-timeout",
        Behaviour {
            delay: Duration::from_secs(3),
            ..ok("too late")
        },
    );
    mock.script("f-stall", vec![mode(Mode::StallMidStream), ok("unstuck")]);
    mock.script(
        "f-truncated",
        vec![mode(Mode::TruncatedStream), ok("whole answer")],
    );
    mock.script(
        "f-billed-then-503",
        vec![
            Behaviour {
                prompt_tokens: 300,
                completion_tokens: 40,
                ..mode(Mode::ErrorAfterUsage)
            },
            ok("second try"),
        ],
    );
    mock.set_for_model("f-bad-json", mode(Mode::InvalidJson));
    mock.script(
        "f-closed",
        vec![mode(Mode::CloseWithoutAnswer), ok("reconnected")],
    );
    mock.set_for_model(
        "f-401",
        fail(401, r#"{"error":{"message":"Invalid authentication"}}"#),
    );
    mock.set_for_model(
        "f-403",
        fail(403, r#"{"error":{"message":"Project lacks access"}}"#),
    );
    mock.set_for_model(
        "f-policy",
        fail(400, r#"{"error":{"message":"flagged by our safety system","code":"content_policy_violation"}}"#),
    );
    let too_long = r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#;
    mock.set_for_model("f-long", fail(400, too_long));
    mock.set_for_model("f-long-alone", fail(400, too_long));
    mock.set_for_model("f-wide", ok("a wide window"));
    mock.set(ok("plain answer"));

    let mut client = home.session();
    let mut expect_answer = |model: &str, starts: &str| {
        let (is_error, text) = chat(&mut client, model);
        assert!(!is_error && text.starts_with(starts), "{model}: {text}");
        text
    };
    // Retried, then answered.
    expect_answer("f-ok", "plain answer");
    expect_answer("f-429-after", "after waiting");
    for model in ["f-500", "f-502", "f-503"] {
        expect_answer(model, "recovered");
    }
    expect_answer("f-stall", "unstuck");
    expect_answer("f-truncated", "whole answer");
    expect_answer("f-billed-then-503", "second try");
    expect_answer("f-closed", "reconnected");
    // Fallen back, and the answer says so.
    for model in ["f-503-down", "f-refused"] {
        let text = expect_answer(model, "the backup answers");
        assert!(
            text.contains(&format!("{model} failed; answered by fallback f-backup")),
            "{text}"
        );
    }
    let text = expect_answer("f-long", "a wide window");
    assert!(text.contains("answered by fallback f-wide"), "{text}");

    // Reported: what went wrong, and what to do.
    let mut expect_error = |model: &str, needles: &[&str]| {
        let (is_error, text) = chat(&mut client, model);
        assert!(is_error, "{model} should fail: {text}");
        for needle in needles {
            assert!(
                text.contains(needle),
                "{model}: {needle:?} missing from {text}"
            );
        }
        assert!(
            text.contains(model),
            "{model}: the error names the model: {text}"
        );
    };
    expect_error(
        "f-429-always",
        &["rate-limited", "wait 7s", "configure a fallback model"],
    );
    expect_error("f-429-bare", &["rate-limited", "wait a little"]);
    expect_error(
        "f-refused-alone",
        &["cannot reach openai", "check the network and the base URL"],
    );
    expect_error(
        "f-timeout",
        &["did not answer", "within 1s", "raise `timeout_secs`"],
    );
    expect_error(
        "f-bad-json",
        &["unexpected answer", "bad JSON", "another model"],
    );
    expect_error(
        "f-401",
        &[
            "rejected the API key",
            "Invalid authentication",
            "check OPENAI_API_KEY",
        ],
    );
    expect_error(
        "f-403",
        &[
            "rejected the API key",
            "lacks access",
            "check OPENAI_API_KEY",
        ],
    );
    expect_error("f-policy", &["content-policy", "rephrase"]);
    expect_error(
        "f-long-alone",
        &[
            "too long",
            "shorten it or use a model with a larger context window",
        ],
    );

    // What the mock saw: 1 + max_retries for retryable faults, 1 for the rest.
    let seen = |model: &str| mock.completions_for(model);
    for model in [
        "f-429-after",
        "f-429-always",
        "f-429-bare",
        "f-500",
        "f-502",
        "f-503",
        "f-503-down",
        "f-timeout",
        "f-stall",
        "f-truncated",
        "f-billed-then-503",
        "f-closed",
    ] {
        assert_eq!(seen(model), 2, "{model} is tried twice");
    }
    for model in [
        "f-ok",
        "f-bad-json",
        "f-401",
        "f-403",
        "f-policy",
        "f-long",
        "f-wide",
        "f-long-alone",
    ] {
        assert_eq!(seen(model), 1, "{model} is tried once");
    }
    assert_eq!(
        seen("f-backup"),
        2,
        "one fallback answer each for f-503-down and f-refused"
    );
    assert_eq!(seen("f-refused") + seen("f-refused-alone"), 0);

    // The ledger: one record per attempt; tokens and cost exactly what was billed.
    let status = status_json(&home);
    let ledger = &status["ledger"];
    let expected = [
        ("f-ok", 1, 0),
        ("f-429-after", 2, 1),
        ("f-429-always", 2, 2),
        ("f-429-bare", 2, 2),
        ("f-500", 2, 1),
        ("f-502", 2, 1),
        ("f-503", 2, 1),
        ("f-503-down", 2, 2),
        ("f-backup", 2, 0),
        ("f-refused", 2, 2),
        ("f-refused-alone", 2, 2),
        ("f-timeout", 2, 2),
        ("f-stall", 2, 1),
        ("f-truncated", 2, 1),
        ("f-billed-then-503", 2, 1),
        ("f-bad-json", 1, 1),
        ("f-closed", 2, 1),
        ("f-401", 1, 1),
        ("f-403", 1, 1),
        ("f-policy", 1, 1),
        ("f-long", 1, 1),
        ("f-wide", 1, 0),
        ("f-long-alone", 1, 1),
    ];
    for (model, calls, errors) in expected {
        assert_ledger_matches(&mock, ledger, model, calls, errors);
    }
    // The failed attempt that streamed a usage chunk before its error is billed too.
    assert_eq!(mock.billed("f-billed-then-503").prompt_tokens, 400);
    // And the totals are the sum of the bill, nothing more.
    let (mut input, mut output) = (0, 0);
    let models: Vec<String> = ledger["all_time"]["by_model"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for model in &models {
        let billed = mock.billed(model);
        input += billed.prompt_tokens;
        output += billed.completion_tokens;
    }
    let total = &ledger["all_time"]["total"];
    assert_eq!(total["input_tokens"], input, "{total}");
    assert_eq!(total["output_tokens"], output, "{total}");
    let cost = (input as f64 * PRICE_IN + output as f64 * PRICE_OUT) / 1e6;
    assert!(
        (total["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{total}"
    );
    let attempts: u64 = expected.iter().map(|(_, calls, _)| calls).sum();
    let failed: u64 = expected.iter().map(|(_, _, errors)| errors).sum();
    assert_eq!(total["calls"], attempts, "{total}");
    assert_eq!(total["errors"], failed, "{total}");
    // The CLI's table shows the same totals.
    let text = String::from_utf8_lossy(&home.zend(&["status"]).stdout).into_owned();
    assert!(text.contains(&zend::util::usd(cost)), "{text}");
}

#[test]
fn consensus_survives_a_failing_model_and_records_every_attempt() {
    let mock = MockProvider::start();
    let home = fault_home(
        &mock,
        &[
            ("c-yes", ""),
            ("c-no", ""),
            ("c-broken", ""),
            ("c-synth", ""),
        ],
    );
    mock.set_for_model("c-yes", ok("yes, adopt it"));
    mock.set_for_model("c-no", ok("no, too risky"));
    mock.set_for_model(
        "c-broken",
        fail(503, r#"{"error":{"message":"overloaded"}}"#),
    );
    mock.set_for_model("c-synth", ok("synthesis: adopt with care"));
    let mut client = home.session();
    let result = client.call_tool(
        "consensus",
        json!({"prompt": "Adopt sled?", "synthesis_model": "c-synth", "models": [
            {"model": "c-yes", "stance": "for"},
            {"model": "c-no", "stance": "against"},
            {"model": "c-broken"}
        ]}),
    );
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(
        text.contains("yes, adopt it") && text.contains("no, too risky"),
        "{text}"
    );
    assert!(text.contains("synthesis: adopt with care"), "{text}");
    assert!(text.contains("c-broken (neutral): FAILED"), "{text}");
    assert!(
        text.contains("try again later or use another model"),
        "{text}"
    );
    assert_eq!(mock.completions_for("c-broken"), 2, "retried once");
    for model in ["c-yes", "c-no", "c-synth"] {
        assert_eq!(mock.completions_for(model), 1, "{model}");
    }
    let status = status_json(&home);
    let ledger = &status["ledger"];
    for (model, calls, errors) in [
        ("c-yes", 1, 0),
        ("c-no", 1, 0),
        ("c-broken", 2, 2),
        ("c-synth", 1, 0),
    ] {
        assert_ledger_matches(&mock, ledger, model, calls, errors);
    }
    let by_tool = &ledger["all_time"]["by_tool"]["consensus"];
    assert_eq!(by_tool["calls"], 5, "{by_tool}");
    assert_eq!(by_tool["input_tokens"], 300, "{by_tool}");
}

/// Every file under the home that contains `FAKE_KEY`, except the ones the test
/// wrote with it on purpose; and how many files were searched.
fn files_with_the_key(home: &ZenHome, written: &[&str]) -> (Vec<String>, usize) {
    let written: Vec<std::path::PathBuf> =
        written.iter().map(|n| home.config_dir().join(n)).collect();
    let mut stack = vec![home.path().to_path_buf()];
    let (mut found, mut searched) = (Vec::new(), 0);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !written.contains(&path) {
                searched += 1;
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes
                    .windows(FAKE_KEY.len())
                    .any(|w| w == FAKE_KEY.as_bytes())
                {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    (found, searched)
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_fake_key_never_reaches_logs_errors_status_doctor_or_the_store_on_any_path() {
    let mock = MockProvider::start();
    // Upstreams that echo the key back in their error bodies, whole or in part.
    let echo_401 = format!(r#"{{"error":{{"message":"Incorrect API key provided: {FAKE_KEY}"}}}}"#);
    let echo_403 = format!(
        r#"{{"error":{{"message":"key {}…{} has no access to this model"}}}}"#,
        &FAKE_KEY[..16],
        &FAKE_KEY[FAKE_KEY.len() - 4..]
    );
    mock.set(fail(401, &echo_401));
    mock.set_for_model("s-403", fail(403, &echo_403));
    let mut home = fault_home(
        &mock,
        &[
            ("s-403", ""),
            ("s-missing", "api_key: ${ZEN_E2E_UNSET_KEY}"),
        ],
    );
    home.env.push(("ZEN_LOG".into(), "trace".into()));
    home.env.push(("ANTHROPIC_API_KEY".into(), FAKE_KEY.into()));
    home.env
        .push(("ANTHROPIC_BASE_URL".into(), mock.url.clone()));
    home.write_config(
        ".env",
        &format!("GEMINI_API_KEY={FAKE_KEY}\nGEMINI_BASE_URL={}\n", mock.url),
    );

    // A running daemon: every provider path, both auth failures, a model whose
    // configured key variable is unset, an unknown model, consensus.
    let mut client = home.session();
    let mut seen = String::new();
    for model in [
        "gpt-5",
        "s-403",
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "s-missing",
        "no-such-model",
    ] {
        let result = client.call_tool("chat", json!({"prompt": "hi", "model": model}));
        assert_eq!(result["isError"], true, "{model}: {}", result_text(&result));
        seen.push_str(&result.to_string());
    }
    assert!(
        seen.contains("rejected the API key"),
        "the auth failure is reported: {seen}"
    );
    assert!(
        seen.contains("lacks access") || seen.contains("no access"),
        "{seen}"
    );
    assert!(
        seen.contains("`s-missing`") && seen.contains("names ZEN_E2E_UNSET_KEY, which is not set"),
        "the model and its unset key variable are named: {seen}"
    );
    // Every model fails authentication, so consensus has nothing to give.
    let consensus = client.call_tool(
        "consensus",
        json!({"prompt": "p", "models": [{"model": "gpt-5"}, {"model": "s-403"}], "synthesis_model": "gpt-5"}),
    );
    assert_eq!(consensus["isError"], true, "{}", result_text(&consensus));
    seen.push_str(&consensus.to_string());
    for tool in ["listmodels", "version"] {
        let result = client.call_tool(tool, json!({}));
        assert_eq!(result["isError"], false, "{tool}: {}", result_text(&result));
        seen.push_str(&result.to_string());
    }
    for args in [
        &["status", "--json"][..],
        &["status"][..],
        &["doctor", "--json", "--live"][..],
        &["doctor", "--live"][..],
        &["models"][..],
    ] {
        seen.push_str(&output_text(&home.zend(args)));
    }
    assert!(
        seen.contains("OPENAI_API_KEY"),
        "keys are named by variable: {seen}"
    );
    home.stop_daemon();
    seen.push_str(&client.stderr());
    drop(client);

    // No daemon: configuration that holds the key where a variable name or a
    // number belongs, and a syntax error on the key's line. zend refuses to
    // start and doctor reports the file, neither quoting the key.
    let broken: [(&str, String); 3] = [
        (
            "models.yaml",
            format!("providers:\n  openai:\n    key_env: {FAKE_KEY}\n"),
        ),
        (
            "limits.yaml",
            format!("budgets:\n  daily_usd: {FAKE_KEY}\n"),
        ),
        (
            "limits.yaml",
            format!("budgets:\n  daily_usd: 5\n  {FAKE_KEY}: [\n"),
        ),
    ];
    for (file, text) in &broken {
        home.write_config(file, text);
        let serve = home.zend(&["serve"]);
        let said = output_text(&serve);
        assert!(
            !serve.status.success(),
            "zend starts with a broken {file}: {said}"
        );
        assert!(said.contains(file), "the error names {file}: {said}");
        seen.push_str(&said);
        let doctor = output_text(&home.zend(&["doctor"]));
        assert!(doctor.contains(file), "doctor reports {file}: {doctor}");
        seen.push_str(&doctor);
        seen.push_str(&output_text(&home.zend(&["doctor", "--json"])));
        if *file == "limits.yaml" {
            std::fs::remove_file(home.config_dir().join(file)).unwrap();
        }
    }
    seen.push_str(&output_text(&home.zend(&["logs", "-n", "100000"])));
    assert!(home.zend_pids().is_empty());

    // The key, or a long prefix of it, anywhere the user or the client can read.
    if let Some(at) = seen.find(&FAKE_KEY[..16]) {
        let from = seen[..at]
            .char_indices()
            .rev()
            .nth(300)
            .map_or(0, |(i, _)| i);
        let to = seen[at..]
            .char_indices()
            .nth(100)
            .map_or(seen.len(), |(i, _)| at + i);
        panic!("the key in client-visible output: …{}…", &seen[from..to]);
    }
    // Everything zend wrote: trace logs, the store, runtime files.
    let (found, searched) = files_with_the_key(&home, &[".env", "models.yaml", "limits.yaml"]);
    assert!(found.is_empty(), "the key is in {found:?}");
    // At least the store, a log and the lock file.
    assert!(searched >= 3, "searched {searched} files");
    assert!(home.path().join("data/store.redb").exists());
}

/// A home with cooldowns on: a model whose calls fail twice in a row (after
/// one retry each) is paused for ten minutes.
fn cooldown_home(mock: &MockProvider, models: &[(&str, &str)]) -> ZenHome {
    let home = ZenHome::with_mock(mock);
    let mut yaml = String::from(
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n  \
         cooldown_failures: 2\n  cooldown_secs: 600\nmodels:\n",
    );
    for (name, extra) in models {
        yaml.push_str(&format!(
            "  {name}:\n    provider: openai\n    prices: {{input: {PRICE_IN}, output: {PRICE_OUT}}}\n"
        ));
        if !extra.is_empty() {
            yaml.push_str(&format!("    {extra}\n"));
        }
    }
    home.write_config("models.yaml", &yaml);
    home
}

#[test]
fn a_model_that_keeps_failing_cools_down_and_is_not_called_until_it_recovers() {
    let mock = MockProvider::start();
    let overloaded = r#"{"error":{"message":"overloaded"}}"#;
    mock.set_for_model("c-alone", fail(503, overloaded));
    mock.set_for_model("c-flaky", fail(503, overloaded));
    mock.set_for_model("c-backup", ok("the backup answers"));
    mock.set_for_model("c-steady", ok("steady"));
    let home = cooldown_home(
        &mock,
        &[
            ("c-alone", ""),
            ("c-flaky", "fallbacks: [c-backup]"),
            ("c-backup", ""),
            ("c-steady", ""),
        ],
    );
    let mut client = home.session();

    // Two failed calls (each a try and a retry) reach the model; the third
    // does not, and says why and what to do.
    for call in 1..=2 {
        let (is_error, text) = chat(&mut client, "c-alone");
        assert!(is_error, "call {call}: {text}");
        assert!(
            text.contains("openai failed for `c-alone` (HTTP 503"),
            "call {call}: {text}"
        );
        assert_eq!(mock.completions_for("c-alone"), 2 * call, "call {call}");
    }
    let (is_error, text) = chat(&mut client, "c-alone");
    assert!(is_error, "{text}");
    assert!(
        text.contains("`c-alone` failed repeatedly and is paused for")
            && text.contains("retry later or configure fallbacks"),
        "{text}"
    );
    assert_eq!(
        mock.completions_for("c-alone"),
        4,
        "the paused model was called"
    );

    // With a fallback: the failing model is tried until it cools down, then
    // skipped, and every call is answered by the fallback.
    for call in 1..=3 {
        let (is_error, text) = chat(&mut client, "c-flaky");
        assert!(
            !is_error
                && text.starts_with("the backup answers")
                && text.contains("c-flaky failed; answered by fallback c-backup"),
            "call {call}: {text}"
        );
        assert_eq!(mock.completions_for("c-backup"), call, "call {call}");
    }
    assert_eq!(
        mock.completions_for("c-flaky"),
        4,
        "two calls reached c-flaky (a try and a retry each), the third skipped it"
    );

    // One model's cooldown is its own: another model is still called.
    let (is_error, text) = chat(&mut client, "c-steady");
    assert!(!is_error && text.starts_with("steady"), "{text}");
    client.close();

    // Calls skipped during a cooldown cost nothing and record no attempt.
    let ledger = &status_json(&home)["ledger"];
    assert_ledger_matches(&mock, ledger, "c-alone", 4, 4);
    assert_ledger_matches(&mock, ledger, "c-flaky", 4, 4);
    assert_ledger_matches(&mock, ledger, "c-backup", 3, 0);
    home.stop_daemon();
}
