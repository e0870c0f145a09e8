use serde_json::json;

use crate::support::{ZenHome, ok_text, result_text};

#[test]
fn prompts_list_one_per_tool_plus_continue_and_expand_to_a_user_message() {
    let home = ZenHome::new();
    let mut client = home.session();
    let listed = client.request("prompts/list", json!({}));
    let names: Vec<&str> = listed["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"challenge") && names.contains(&"continue"),
        "{names:?}"
    );

    let got = client.request(
        "prompts/get",
        json!({"name": "challenge", "arguments": {"request": "is X true?"}}),
    );
    let text = got["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("`challenge`") && text.contains("is X true?"),
        "{text}"
    );

    let unknown = client.request("prompts/get", json!({"name": "nope"}));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("available prompts"),
        "{unknown}"
    );
}

#[test]
fn challenge_wraps_the_statement_without_a_model_call() {
    let home = ZenHome::new();
    let mut client = home.session();
    let result = client.call_tool(
        "challenge",
        json!({"prompt": "Rust has no undefined behaviour"}),
    );
    let text = ok_text(&result);
    assert!(
        text.contains("CRITICAL REASSESSMENT") && text.contains("Rust has no undefined behaviour")
    );

    let missing = client.call_tool("challenge", json!({}));
    assert_eq!(missing["isError"], true);
    assert!(result_text(&missing).contains("prompt"), "{missing}");
}

#[test]
fn disabled_tools_are_hidden_but_version_stays() {
    let mut home = ZenHome::new();
    home.env
        .push(("DISABLED_TOOLS".into(), "challenge,version".into()));
    home.write_config("tools/apilookup.yaml", "enabled: false\n");
    let mut client = home.session();
    let names = client.tool_names();
    assert!(
        !names.contains(&"challenge") && !names.contains(&"apilookup"),
        "{names:?}"
    );
    assert!(names.contains(&"version"), "{names:?}");
}

use std::time::Duration;

use crate::support::mock_provider::{Behaviour, MockProvider, last_user_text};
use crate::support::{FAKE_KEY, WAIT, estimated_input_tokens, wait_until};

/// The continuation_id in a model tool's answer.
fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .expect("answer offers a continuation")
        + "continuation_id: ".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn chat_answers_with_model_tokens_cost_and_a_continuation() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "Use a B-tree.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "Which index for range scans?", "model": "gpt-5"}),
    );
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    let (header, answer) = text.split_once("\n\n").unwrap();
    assert!(
        header.starts_with("[zen] continuation_id: ") && header.contains("gpt-5 · 100 in / 20 out"),
        "the header repeats the footer's essentials first: {text}"
    );
    assert!(answer.starts_with("Use a B-tree.\n\n---\n"), "{text}");
    assert!(
        text.contains("model: gpt-5") && text.contains("100 in / 20 out tokens"),
        "{text}"
    );
    assert!(text.contains('$'), "known model has a cost: {text}");
    assert!(text.contains("turns left"), "{text}");

    let requests = mock.completions();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert!(
        request
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {FAKE_KEY}"))
    );
    assert_eq!(request.body["model"], "gpt-5");
    assert_eq!(request.body["messages"][0]["role"], "system");
    assert!(last_user_text(&request.body).ends_with("Which index for range scans?"));

    // The spend is in the ledger and shows in status.
    let status: serde_json::Value =
        serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    let ledger = status["ledger"].to_string();
    assert!(ledger.contains("gpt-5"), "{ledger}");
}

#[test]
fn a_conversation_continues_across_tools_and_sessions_with_history_once() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "first answer".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut first = home.session();
    let text = ok_text(&first.call_tool("chat", json!({"prompt": "Remember the word PELICAN."})));
    let id = continuation_id(&text);
    assert!(first.close().success());

    mock.set(Behaviour {
        reply: "second answer".into(),
        ..Behaviour::default()
    });
    let mut second = home.session();
    let result = second.call_tool(
        "thinkdeep",
        json!({"prompt": "What was the word?", "continuation_id": id}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    assert_eq!(continuation_id(&result_text(&result)), id);
    let sent = last_user_text(&mock.completions()[1].body);
    assert_eq!(
        sent.matches("--- Turn 1:").count(),
        1,
        "history embedded once: {sent}"
    );
    assert_eq!(sent.matches("--- Turn 2:").count(), 1, "{sent}");
    assert!(
        !sent.contains("--- Turn 3:"),
        "the new turn is not in the history: {sent}"
    );
    assert_eq!(sent.matches("first answer").count(), 1, "{sent}");
    assert_eq!(sent.matches("What was the word?").count(), 1, "{sent}");
    assert!(sent.find("PELICAN").unwrap() < sent.find("What was the word?").unwrap());

    let unknown = second.call_tool(
        "chat",
        json!({"prompt": "x", "continuation_id": "5b0c4f3e-0000-4000-8000-000000000000"}),
    );
    assert_eq!(unknown["isError"], true);
    assert!(
        result_text(&unknown).contains("kept for"),
        "{}",
        result_text(&unknown)
    );
}

#[test]
fn files_and_directories_are_embedded_and_relative_paths_refused() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("src")).unwrap();
    std::fs::write(
        project.path().join("src/lib.rs"),
        "pub fn answer() -> u32 { 42 }\n",
    )
    .unwrap();
    std::fs::write(project.path().join("README.md"), "# demo\n").unwrap();
    let mut client = home.session();
    let dir = project.path().to_string_lossy().into_owned();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "Review", "absolute_file_paths": [dir]}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    let sent = last_user_text(&mock.completions()[0].body);
    assert!(
        sent.contains("pub fn answer() -> u32 { 42 }") && sent.contains("# demo"),
        "{sent}"
    );

    let relative = client.call_tool(
        "chat",
        json!({"prompt": "Review", "absolute_file_paths": ["src/lib.rs"]}),
    );
    assert_eq!(relative["isError"], true);
    assert!(result_text(&relative).contains("not an absolute path"));
    assert_eq!(
        mock.completions().len(),
        1,
        "no upstream call for bad input"
    );
}

#[test]
fn images_to_a_non_vision_model_and_unknown_models_get_clear_errors() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let image = "data:image/png;base64,iVBORw0KGgo=";
    let refused = client.call_tool(
        "chat",
        json!({"prompt": "What is this?", "model": "deepseek-chat", "images": [image]}),
    );
    assert_eq!(refused["isError"], true);
    assert!(
        result_text(&refused).contains("does not accept images"),
        "{}",
        result_text(&refused)
    );

    let unknown = client.call_tool(
        "chat",
        json!({"prompt": "hi", "model": "no-such-model-xyz"}),
    );
    assert_eq!(unknown["isError"], true);
    let text = result_text(&unknown);
    assert!(
        text.contains("no-such-model-xyz") && text.contains("gpt-5"),
        "lists what is available: {text}"
    );
    assert!(mock.completions().is_empty());
}

#[test]
fn an_oversize_prompt_is_sent_back_then_accepted_as_prompt_txt() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        echo: true,
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let huge = "long question ".repeat(5_000);
    let result = client.call_tool("chat", json!({"prompt": huge}));
    let text = ok_text(&result);
    assert!(
        text.contains("resend_prompt") && text.contains("prompt.txt"),
        "{text}"
    );
    assert!(mock.completions().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.txt");
    std::fs::write(&file, &huge).unwrap();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "see prompt.txt", "absolute_file_paths": [file]}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    let sent = last_user_text(&mock.completions()[0].body);
    assert!(sent.contains(&huge), "the file's text is the prompt");
}

#[test]
fn a_yaml_plugin_becomes_a_tool() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "tools/explain.yaml",
        "description: Explain code for an audience.\nsystem_prompt: You are EXPLAINER.\n\
         prompt_template: 'For {{audience}}: {{prompt}}'\nfields:\n  - {name: audience, required: true}\n",
    );
    home.write_config("tools/broken.yaml", "description: [unclosed\n");
    let mut client = home.session();
    let names = client.tool_names();
    assert!(
        names.contains(&"explain") && !names.contains(&"broken"),
        "{names:?}"
    );

    let result = client.call_tool(
        "explain",
        json!({"prompt": "fn main() {}", "audience": "juniors"}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    let body = &mock.completions()[0].body;
    assert!(last_user_text(body).ends_with("For juniors: fn main() {}"));
    assert_eq!(body["messages"][0]["content"], "You are EXPLAINER.");
    let missing = client.call_tool("explain", json!({"prompt": "x"}));
    assert_eq!(missing["isError"], true);
}

#[test]
fn progress_notifications_reach_a_client_that_asks() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        delay: Duration::from_millis(300),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let response = client.request(
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "slow one"}, "_meta": {"progressToken": "tok-1"}}),
    );
    assert!(response.get("result").is_some(), "{response}");
    let progress: Vec<_> = client
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress in {:?}",
        client.notifications
    );
    assert_eq!(progress[0]["params"]["progressToken"], "tok-1");
    assert!(
        progress[0]["params"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens so far")
    );
}

#[test]
fn cancellation_aborts_the_upstream_records_the_spend_and_answers_nothing() {
    let mock = MockProvider::start();
    // The upstream never answers until released: only the cancellation can end the call.
    mock.hold();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let id = client.send_tool_call("chat", json!({"prompt": "never mind", "model": "gpt-5"}));
    assert!(
        mock.wait_in_flight(1, WAIT),
        "the upstream request never started"
    );
    client.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}}));
    // zend hangs up on the provider while the mock still holds the request.
    wait_until("zend to close the provider connection", || {
        !mock.hangups().is_empty()
    });
    assert_eq!(mock.hangups(), ["gpt-5"]);
    wait_until("the cancelled call to end", || {
        home.status_json()["in_flight_calls"] == 0
    });
    // What was spent: zend's estimate of the request it sent (the provider never
    // said), priced; a cancellation, not an error.
    let estimate = estimated_input_tokens(&mock.completions()[0].body);
    let status = home.status_json();
    let row = &status["ledger"]["all_time"]["by_model"]["gpt-5"];
    assert_eq!(row["calls"], 1, "{row}");
    assert_eq!(row["errors"], 0, "a cancellation is not an error: {row}");
    assert_eq!(row["input_tokens"], estimate, "{row}");
    assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "{row}");
    assert_eq!(mock.billed("gpt-5").answers, 0);

    mock.release();
    // The cancelled request gets no response (MCP: the receiver does not answer
    // it); the session goes on.
    let version = client.call_tool("version", json!({}));
    assert_eq!(version["isError"], false);
    assert!(
        client
            .notifications
            .iter()
            .all(|m| m.get("id") != Some(&json!(id))),
        "the cancelled request was answered: {:?}",
        client.notifications
    );
}

#[test]
fn planner_keeps_its_plan_per_thread_without_model_calls() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut a = home.session();
    let mut b = home.session();
    let step = |n: u32, text: &str, id: Option<&str>, more: bool| {
        let mut args =
            json!({"step": text, "step_number": n, "total_steps": 2, "next_step_required": more});
        if let Some(id) = id {
            args["continuation_id"] = json!(id);
        }
        args
    };
    let first_a = ok_text(&a.call_tool("planner", step(1, "A: design schema", None, true)));
    let first_b = ok_text(&b.call_tool("planner", step(1, "B: pick a name", None, true)));
    assert!(first_a.contains("pause_for_planning"), "{first_a}");
    let (id_a, id_b) = (continuation_id(&first_a), continuation_id(&first_b));
    assert_ne!(id_a, id_b);
    let done = ok_text(&a.call_tool("planner", step(2, "A: write migration", Some(&id_a), false)));
    assert!(done.contains("planning_complete"), "{done}");
    assert!(
        done.contains("1. A: design schema") && done.contains("2. A: write migration"),
        "{done}"
    );
    assert!(
        !done.contains("B: pick a name"),
        "plans do not leak between runs: {done}"
    );
    assert!(mock.completions().is_empty());

    let missing = a.call_tool("planner", step(2, "x", None, false));
    assert_eq!(missing["isError"], true);
    assert!(result_text(&missing).contains("continuation_id"));
}

#[test]
fn an_answered_turn_and_its_cost_survive_kill_9() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "durable answer".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let text =
        ok_text(&client.call_tool("chat", json!({"prompt": "remember me", "model": "gpt-5"})));
    let id = continuation_id(&text);
    // The live shim restarts zend at once (that is its job), so wait for the
    // killed daemon itself, not for "no daemon at all".
    for pid in home.zend_pids() {
        crate::support::kill9(pid);
        assert!(home.wait_no_daemon_pid(pid, Duration::from_secs(10)));
    }
    drop(client);

    let mut next = home.session();
    let shown = ok_text(&next.call_tool("threads", json!({"continuation_id": id})));
    assert!(
        shown.contains("remember me") && shown.contains("durable answer"),
        "{shown}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["ledger"]["all_time"]["total"]["calls"], 1,
        "{}",
        status["ledger"]
    );
}

#[test]
fn a_failed_call_is_in_the_ledger_after_kill_9() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        fail: Some((
            400,
            r#"{"error":{"message":"bad request","type":"invalid_request_error"}}"#.into(),
        )),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let failed = client.call_tool("chat", json!({"prompt": "will fail", "model": "gpt-5"}));
    assert_eq!(failed["isError"], true, "{failed}");
    // The live shim restarts zend at once (that is its job), so wait for the
    // killed daemon itself, not for "no daemon at all".
    for pid in home.zend_pids() {
        crate::support::kill9(pid);
        assert!(home.wait_no_daemon_pid(pid, Duration::from_secs(10)));
    }
    drop(client);

    // A new session starts a new zend on the same store.
    let _next = home.session();
    let status: serde_json::Value =
        serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    let total = &status["ledger"]["all_time"]["total"];
    assert!(total["calls"].as_u64() >= Some(1), "{}", status["ledger"]);
    assert_eq!(total["errors"], total["calls"], "{}", status["ledger"]);
}

#[test]
fn two_sessions_appending_to_one_thread_both_land() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        echo: true,
        delay: Duration::from_millis(50),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut first = home.session();
    let id = continuation_id(&ok_text(
        &first.call_tool("chat", json!({"prompt": "start"})),
    ));
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let home = &home;
                let id = id.clone();
                scope.spawn(move || {
                    let mut client = home.session();
                    let mut ok = true;
                    for j in 0..3 {
                        let r = client.call_tool(
                            "chat",
                            json!({"prompt": format!("s{i} m{j}"), "continuation_id": id}),
                        );
                        ok &= r["isError"] == false;
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|ok| *ok));
    let shown = ok_text(&first.call_tool("threads", json!({"continuation_id": id})));
    for i in 0..2 {
        let positions: Vec<usize> = (0..3)
            .map(|j| shown.find(&format!("s{i} m{j}")).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "in order per session: {shown}"
        );
    }
    let thread = home.zend(&["status", "--json"]);
    assert!(thread.status.success());
}

#[test]
fn a_call_over_the_daily_budget_is_refused_with_cap_spend_and_reset() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        prompt_tokens: 1_000_000,
        completion_tokens: 100_000,
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "budgets:\n  daily_usd: 1.0\n");
    let mut client = home.session();
    let first = client.call_tool("chat", json!({"prompt": "expensive", "model": "gpt-5"}));
    assert_eq!(first["isError"], false, "{}", result_text(&first));
    let refused = client.call_tool("chat", json!({"prompt": "again", "model": "gpt-5"}));
    assert_eq!(refused["isError"], true);
    let text = result_text(&refused);
    // gpt-5 at LiteLLM's prices: 1M in × $1.25/M + 100k out × $10/M = $2.25.
    assert!(
        text.contains("would pass the daily budget of $1.00 ($2.25 spent")
            && text.contains("raise budgets.daily_usd in limits.yaml"),
        "names the cap, the spend and the setting: {text}"
    );
    assert!(
        text.to_lowercase().contains("reset"),
        "says when it resets: {text}"
    );
    assert_eq!(
        mock.completions().len(),
        1,
        "the refused call never went upstream"
    );
}

#[test]
fn the_tool_surface_fits_the_context_budget() {
    let home = ZenHome::new();
    let mut client = home.shim();
    let init = client.initialize();
    let tools = client.request("tools/list", json!({}));
    let instructions = init["result"]["instructions"].as_str().unwrap_or("").len();
    let listed = tools["result"].to_string().len();
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "chat",
        "thinkdeep",
        "consensus",
        "planner",
        "challenge",
        "apilookup",
        "listmodels",
        "version",
        "threads",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    println!(
        "tools/list {listed} bytes + instructions {instructions} bytes, {} tools",
        names.len()
    );
    assert!(
        listed + instructions <= 16 * 1024,
        "tools/list + instructions = {} bytes",
        listed + instructions
    );
    // No model-name enums in schemas: the model field is free-form.
    assert!(
        !tools.to_string().contains("\"enum\":[\"gpt"),
        "model names leaked into a schema"
    );
}

#[test]
fn a_rate_limit_from_limits_yaml_holds_across_sessions() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "tools:\n  chat:\n    rpm: 1\n");
    let mut first = home.session();
    let mut second = home.session();
    assert_eq!(
        first.call_tool("chat", json!({"prompt": "one"}))["isError"],
        false
    );
    let refused = second.call_tool("chat", json!({"prompt": "two"}));
    assert_eq!(refused["isError"], true);
    let text = result_text(&refused);
    assert!(
        text.contains("1 calls per minute") && text.contains("retry in"),
        "{text}"
    );
    assert_eq!(mock.completions().len(), 1);
}
