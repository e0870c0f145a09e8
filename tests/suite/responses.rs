//! OpenAI's Responses API through the real binaries (issue #40): `gpt-5-pro` and the
//! other models LiteLLM's map lists as served only by `/v1/responses` reach the mock's
//! `/v1/responses` and never `/v1/chat/completions`, from `chat`, `consensus` and a
//! workflow tool's expert step; their usage (reasoning tokens included) and cost reach
//! the ledger; a `response.failed` event and a 429 are retried, fallen back from or
//! reported like any provider's; cancelling closes the stream; `gpt-5` stays on chat.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, Mode, Recorded};
use crate::support::{McpClient, ZenHome, ok_text, result_text};

fn paths(mock: &MockProvider) -> Vec<String> {
    mock.completions().into_iter().map(|r| r.path).collect()
}

fn last_for(mock: &MockProvider, model: &str) -> Recorded {
    mock.completions()
        .into_iter()
        .rfind(|r| r.body["model"] == model)
        .unwrap_or_else(|| panic!("no request for {model}"))
}

fn chat(client: &mut McpClient, model: &str) -> (bool, String) {
    let result = client.call_tool(
        "chat",
        json!({"prompt": "RESPONSES_PROMPT_MARKER", "model": model}),
    );
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
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn chat_with_gpt_5_pro_uses_the_responses_api_and_the_ledger_has_its_reasoning_and_cost() {
    let mock = MockProvider::start();
    mock.set_for_model(
        "gpt-5-pro",
        Behaviour {
            reply: "a considered answer".into(),
            // Long enough for a progress notification (the first comes at once).
            delay: Duration::from_millis(300),
            prompt_tokens: 2000,
            completion_tokens: 1000,
            cached_tokens: 500,
            reasoning_tokens: 800,
            ..Behaviour::default()
        },
    );
    mock.set(Behaviour {
        reply: "a chat answer".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();

    let (is_error, text) = chat(&mut client, "openai/gpt-5-pro");
    assert!(
        !is_error && text.starts_with("a considered answer"),
        "{text}"
    );
    assert_eq!(paths(&mock), ["/v1/responses"]);
    let sent = last_for(&mock, "gpt-5-pro").body;
    assert_eq!(sent["store"], false, "{sent}");
    assert_eq!(sent["stream"], true, "{sent}");
    // chat's thinking mode is medium; gpt-5-pro accepts only high.
    assert_eq!(sent["reasoning"], json!({"effort": "high"}), "{sent}");
    assert!(sent["instructions"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(sent.get("messages").is_none(), "{sent}");
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.last().unwrap()["role"], "user");
    assert!(
        input.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("RESPONSES_PROMPT_MARKER")
    );

    // gpt-5 (served by both endpoints) keeps chat completions, by either name.
    for name in ["gpt-5", "openai/gpt-5"] {
        let (is_error, text) = chat(&mut client, name);
        assert!(!is_error && text.starts_with("a chat answer"), "{text}");
    }
    assert_eq!(
        paths(&mock),
        [
            "/v1/responses",
            "/v1/chat/completions",
            "/v1/chat/completions"
        ]
    );

    // Progress reaches a client that asks while the model thinks.
    let response = client.request(
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "again", "model": "gpt-5-pro"},
               "_meta": {"progressToken": "pro-1"}}),
    );
    assert!(response.get("result").is_some(), "{response}");
    let progress = client
        .notifications
        .iter()
        .find(|n| {
            n["method"] == "notifications/progress" && n["params"]["progressToken"] == "pro-1"
        })
        .unwrap_or_else(|| panic!("no progress in {:?}", client.notifications));
    assert!(
        progress["params"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-5-pro"),
        "{progress}"
    );

    // The ledger (two calls): tokens as reported, cost from LiteLLM's prices ($15 in,
    // $120 out per million; the map has no cache price for gpt-5-pro).
    let status = status_json(&home);
    let row = &status["ledger"]["all_time"]["by_model"]["gpt-5-pro"];
    assert_eq!(row["calls"], 2, "{row}");
    assert_eq!(row["input_tokens"], 4000, "{row}");
    assert_eq!(row["output_tokens"], 2000, "{row}");
    assert_eq!(row["cached_tokens"], 1000, "{row}");
    assert_eq!(row["reasoning_tokens"], 1600, "{row}");
    let cost = row["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - 2.0 * (2000.0 * 15e-6 + 1000.0 * 120e-6)).abs() < 1e-9,
        "{row}"
    );

    // listmodels says which models need the Responses API, with their prices.
    let listing = ok_text(&client.call_tool("listmodels", json!({})));
    let pro = listing
        .lines()
        .skip_while(|l| !l.starts_with("- gpt-5-pro"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        pro.contains("Responses API") && pro.contains("$15 in / $120 out"),
        "{listing}"
    );
}

#[test]
fn failed_responses_and_429s_are_retried_fallen_back_from_or_reported() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n  \
         retry_after_max_secs: 1\n  cooldown_failures: 0\nmodels:\n\
         \x20 r-flaky: {provider: openai, api: responses}\n\
         \x20 r-limited: {provider: openai, api: responses}\n\
         \x20 r-down: {provider: openai, api: responses, fallbacks: [r-backup]}\n\
         \x20 r-backup: {provider: openai}\n\
         \x20 r-always-limited: {provider: openai, api: responses}\n\
         \x20 r-always-failed: {provider: openai, api: responses}\n",
    );
    let failed = || Behaviour {
        mode: Mode::ResponseFailed,
        ..Behaviour::default()
    };
    let ok = |reply: &str| Behaviour {
        reply: reply.into(),
        ..Behaviour::default()
    };
    let limited = || Behaviour {
        fail: Some((
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#.into(),
        )),
        retry_after: Some("1".into()),
        ..Behaviour::default()
    };
    mock.script("r-flaky", vec![failed(), ok("after a failed response")]);
    mock.script("r-limited", vec![limited(), ok("after waiting")]);
    mock.set_for_model("r-down", failed());
    mock.set_for_model("r-backup", ok("the backup answers"));
    mock.set_for_model("r-always-limited", limited());
    mock.set_for_model("r-always-failed", failed());
    let mut client = home.session();

    let (is_error, text) = chat(&mut client, "r-flaky");
    assert!(
        !is_error && text.starts_with("after a failed response"),
        "{text}"
    );
    let (is_error, text) = chat(&mut client, "r-limited");
    assert!(!is_error && text.starts_with("after waiting"), "{text}");
    let (is_error, text) = chat(&mut client, "r-down");
    assert!(
        !is_error && text.starts_with("the backup answers"),
        "{text}"
    );
    assert!(
        text.contains("r-down failed; answered by fallback r-backup"),
        "{text}"
    );
    let (is_error, text) = chat(&mut client, "r-always-limited");
    assert!(is_error, "{text}");
    assert!(
        text.contains("r-always-limited") && text.contains("rate-limited"),
        "{text}"
    );

    // The upstream's own reason, not a cut-off stream.
    let (is_error, text) = chat(&mut client, "r-always-failed");
    assert!(is_error, "{text}");
    assert!(
        text.contains("r-always-failed")
            && text.contains("server_error")
            && text.contains("The model failed to generate a response."),
        "{text}"
    );

    let count = |model: &str, path: &str| {
        mock.completions()
            .iter()
            .filter(|r| r.body["model"] == model && r.path == path)
            .count()
    };
    for (model, requests) in [
        ("r-flaky", 2),
        ("r-limited", 2),
        ("r-down", 2),
        ("r-always-limited", 2),
        ("r-always-failed", 2),
    ] {
        assert_eq!(count(model, "/v1/responses"), requests, "{model}");
        assert_eq!(count(model, "/v1/chat/completions"), 0, "{model}");
    }
    assert_eq!(count("r-backup", "/v1/chat/completions"), 1);

    let status = status_json(&home);
    let row = &status["ledger"]["all_time"]["by_model"]["r-down"];
    assert_eq!(
        (row["calls"].as_u64(), row["errors"].as_u64()),
        (Some(2), Some(2)),
        "{row}"
    );
}

#[test]
fn cancelling_a_responses_call_closes_its_stream() {
    let mock = MockProvider::start();
    // The model "reasons": one event, then nothing until zend hangs up.
    mock.set_for_model(
        "gpt-5-pro",
        Behaviour {
            mode: Mode::StallMidStream,
            ..Behaviour::default()
        },
    );
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let id = client.send_tool_call(
        "chat",
        json!({"prompt": "think long", "model": "gpt-5-pro"}),
    );
    assert!(
        mock.wait_in_flight(1, Duration::from_secs(20)),
        "the call never reached the mock"
    );
    assert_eq!(paths(&mock), ["/v1/responses"]);
    client.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id}}),
    );
    // The mock holds the stream open for a minute unless zend closes it.
    let until = Instant::now() + Duration::from_secs(30);
    while mock.in_flight().0 > 0 {
        assert!(
            Instant::now() < until,
            "the upstream stream is still open after the cancel"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The session goes on.
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
}

#[test]
fn consensus_and_a_workflow_expert_step_use_the_responses_api() {
    let mock = MockProvider::start();
    mock.set_for_model(
        "gpt-5-pro",
        Behaviour {
            reply: "pro view".into(),
            ..Behaviour::default()
        },
    );
    mock.set_for_model(
        "gpt-5",
        Behaviour {
            reply: "plain view".into(),
            ..Behaviour::default()
        },
    );
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();

    let result = client.call_tool(
        "consensus",
        json!({"prompt": "Adopt it?", "synthesis_model": "gpt-5-pro", "models": [
            {"model": "gpt-5-pro", "stance": "for"},
            {"model": "gpt-5", "stance": "against"}
        ]}),
    );
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(
        text.contains("pro view") && text.contains("plain view"),
        "{text}"
    );
    let by_path = |model: &str, path: &str| {
        mock.completions()
            .iter()
            .filter(|r| r.body["model"] == model && r.path == path)
            .count()
    };
    assert_eq!(
        by_path("gpt-5-pro", "/v1/responses"),
        2,
        "opinion and synthesis"
    );
    assert_eq!(by_path("gpt-5-pro", "/v1/chat/completions"), 0);
    assert_eq!(by_path("gpt-5", "/v1/chat/completions"), 1);

    // A one-step codereview: its expert call goes to gpt-5-pro.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lib.rs");
    std::fs::write(&file, "fn answer() -> u32 { 41 }\n").unwrap();
    let before = by_path("gpt-5-pro", "/v1/responses");
    let result = client.call_tool(
        "codereview",
        json!({"step": "review it", "step_number": 1, "total_steps": 1,
               "next_step_required": false, "findings": "an off-by-one",
               "relevant_files": [file], "review_type": "full", "model": "gpt-5-pro"}),
    );
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(text.contains("pro view"), "{text}");
    assert_eq!(by_path("gpt-5-pro", "/v1/responses"), before + 1);
    assert_eq!(by_path("gpt-5-pro", "/v1/chat/completions"), 0);
}
