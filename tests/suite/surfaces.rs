//! Surfaces a client or a user reads directly: `listmodels`, `apilookup`,
//! the threads as MCP resources, `zend ask -` and `zend ask --json`, Ctrl-C
//! during `zend ask`, and `zend doctor --live` against the mock.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, last_user_text};
use crate::support::{
    COMMAND_DEADLINE, FAKE_KEY, WAIT, ZenHome, output_within, result_text, wait_until, zend_bin,
};

/// A home whose OpenAI and Anthropic traffic goes to `mock`.
fn home_with_anthropic(mock: &MockProvider) -> ZenHome {
    let mut home = ZenHome::with_mock(mock);
    home.env.push(("ANTHROPIC_API_KEY".into(), FAKE_KEY.into()));
    home.env
        .push(("ANTHROPIC_BASE_URL".into(), mock.url.clone()));
    home
}

/// The lines of one `## section` of a listing (up to the next section).
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != format!("## {title}"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn listmodels_lists_configured_providers_models_and_says_what_the_others_need() {
    let mock = MockProvider::start();
    let home = home_with_anthropic(&mock);
    let mut client = home.session();
    let result = client.call_tool("listmodels", json!({}));
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(text.starts_with("Default model: auto\n"), "{text}");

    // Each configured provider's models, with context, prices and category.
    let openai = section(&text, "openai");
    assert!(
        openai.contains(&"- gpt-5 (aliases: gpt5)"),
        "gpt-5 under openai: {text}"
    );
    let gpt5 = openai
        .iter()
        .skip_while(|l| !l.starts_with("- gpt-5 "))
        .nth(1)
        .unwrap();
    assert!(
        gpt5.contains("context 272K") && gpt5.contains("$1.25 in / $10 out per 1M tokens"),
        "{gpt5}"
    );
    let anthropic = section(&text, "anthropic");
    assert!(
        anthropic
            .iter()
            .any(|l| l.starts_with("- claude-sonnet-4-5 (aliases: sonnet")),
        "{text}"
    );
    // No model of a provider without a key is offered.
    assert!(section(&text, "gemini").is_empty(), "{text}");
    assert!(!text.contains("- gemini-2.5-pro"), "{text}");

    // Unconfigured providers are marked, each with what to set.
    let missing = section(&text, "Not configured");
    assert!(
        missing.contains(
            &"- gemini: no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) from Google AI Studio"
        ),
        "{text}"
    );
    assert!(
        missing
            .iter()
            .any(|l| l.starts_with("- ollama: no endpoint: set OLLAMA_HOST")),
        "{text}"
    );
    for configured in ["openai", "anthropic"] {
        assert!(
            !missing
                .iter()
                .any(|l| l.starts_with(&format!("- {configured}:"))),
            "{configured} is configured: {text}"
        );
    }
    assert!(mock.completions().is_empty(), "listmodels calls no model");
    client.close();
}

#[test]
fn apilookup_sends_the_assistant_to_search_with_todays_date_and_calls_no_model() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let today = || {
        let days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400;
        let (y, m, d) = zend::time::civil_from_days(days as i64);
        format!("Today is {y:04}-{m:02}-{d:02}.")
    };
    let before = today();
    let result = client.call_tool(
        "apilookup",
        json!({"prompt": "  tokio::select! in tokio 1.48  "}),
    );
    let after = today();
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(text.starts_with("status: web_lookup_needed\n"), "{text}");
    assert!(
        text.contains(&before) || text.contains(&after),
        "{before} in {text}"
    );
    assert!(
        text.contains("\n\"tokio::select! in tokio 1.48\"\n"),
        "the question, trimmed: {text}"
    );
    assert!(text.contains("Use your web search"), "{text}");

    let refused = client.call_tool("apilookup", json!({}));
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(
        result_text(&refused),
        "invalid arguments: missing field `prompt`"
    );
    assert!(mock.completions().is_empty(), "apilookup calls no model");
    client.close();
}

#[test]
fn threads_are_resources_the_list_a_thread_and_one_turn() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "The RESOURCE answer.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "Resource question\nsecond line", "model": "gpt-5"}),
    );
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    let id = text
        .strip_prefix("[zen] continuation_id: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let uri = format!("zen://threads/{id}");

    let listed = client.request("resources/list", json!({}));
    let resources = listed["result"]["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2, "{listed}");
    assert_eq!(resources[0]["uri"], "zen://threads");
    assert_eq!(resources[1]["uri"], uri.as_str());
    assert_eq!(resources[1]["name"], "Resource question", "{listed}");
    assert_eq!(resources[1]["description"], "2 turns via chat", "{listed}");
    let templates = client.request("resources/templates/list", json!({}));
    let templates: Vec<&str> = templates["result"]["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["uriTemplate"].as_str())
        .collect();
    assert_eq!(
        templates,
        [
            "zen://threads/{continuation_id}",
            "zen://threads/{continuation_id}/turns/{turn}"
        ]
    );

    let read = |client: &mut crate::support::McpClient, uri: &str| -> Value {
        client.request("resources/read", json!({"uri": uri}))
    };
    let list = read(&mut client, "zen://threads");
    let list_text = list["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(
        list_text.contains(&id) && list_text.contains("Resource question"),
        "{list}"
    );
    let thread = read(&mut client, &uri);
    let contents = &thread["result"]["contents"][0];
    assert_eq!(contents["uri"], uri.as_str());
    assert_eq!(contents["mimeType"], "text/plain");
    let thread_text = contents["text"].as_str().unwrap();
    let question = thread_text.find("Resource question\nsecond line");
    let answer = thread_text.find("The RESOURCE answer.");
    assert!(
        question.is_some() && answer.is_some() && question < answer,
        "both turns, in order: {thread_text}"
    );
    let turn = read(&mut client, &format!("{uri}/turns/2"));
    assert_eq!(
        turn["result"]["contents"][0]["text"], "The RESOURCE answer.",
        "{turn}"
    );

    // What does not exist is -32002, saying what does.
    for (missing, says) in [
        (
            format!("{uri}/turns/3"),
            format!("thread {id} has 2 turns; {uri}/turns/3 names none of them"),
        ),
        (
            "zen://threads/5b0c4f3e-0000-4000-8000-000000000000".to_owned(),
            "no conversation thread 5b0c4f3e-0000-4000-8000-000000000000".to_owned(),
        ),
        (
            "zen://elsewhere".to_owned(),
            "no resource zen://elsewhere; zen serves zen://threads".to_owned(),
        ),
    ] {
        let refused = read(&mut client, &missing);
        assert_eq!(refused["error"]["code"], -32002, "{missing}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(&says), "{missing}: {message}");
    }
    client.close();
}

/// `zend ask` with `input` on its stdin.
fn ask_with_stdin(home: &ZenHome, args: &[&str], input: &str) -> std::process::Output {
    let mut child = home
        .command(&zend_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let until = std::time::Instant::now() + COMMAND_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("zend {args:?} did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn ask_reads_the_prompt_from_stdin_and_json_gives_answer_id_and_cost() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "answer to stdin".into(),
        prompt_tokens: 1_000,
        completion_tokens: 200,
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);

    let prompt = "A PROMPT piped in\nover two lines\n";
    let asked = ask_with_stdin(&home, &["ask", "--model", "gpt-5", "-"], prompt);
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(asked.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&asked.stdout), "answer to stdin\n");
    let sent = last_user_text(&mock.completions()[0].body);
    assert!(
        sent.contains("A PROMPT piped in\nover two lines"),
        "the whole of stdin is the prompt: {sent}"
    );

    // --json: one object; the continuation id continues the thread.
    let json_out = output_within(
        home.command(&zend_bin())
            .args(["ask", "--json", "--model", "gpt-5", "What now?"]),
        COMMAND_DEADLINE,
    );
    assert!(
        json_out.status.success(),
        "{}",
        String::from_utf8_lossy(&json_out.stderr)
    );
    let value: Value = serde_json::from_slice(&json_out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&json_out.stdout)
        )
    });
    assert_eq!(value["tool"], "chat", "{value}");
    assert_eq!(value["is_error"], false, "{value}");
    assert_eq!(value["answer"], "answer to stdin", "{value}");
    let id = value["continuation_id"].as_str().unwrap().to_owned();
    let shown = home.zend(&["threads", "show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["turns"].as_array().map(Vec::len), Some(2), "{shown}");
    assert_eq!(shown["turns"][0]["text"], "What now?", "{shown}");
    // The footer names the model, the tokens and the cost the ledger holds.
    let status: Value = serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    let cost = status["ledger"]["all_time"]["by_model"]["gpt-5"]["cost_usd"]
        .as_f64()
        .unwrap()
        / 2.0;
    let footer = value["footer"].as_str().unwrap();
    assert!(
        footer.starts_with(&format!(
            "model: gpt-5 · 1000 in / 200 out tokens · {} · ",
            zend::util::usd(cost)
        )),
        "{footer}"
    );
    assert!(
        footer.contains(&format!("continuation_id: {id} ")),
        "{footer}"
    );

    // A tool error: exit 4, and still one JSON object saying so.
    let failed = output_within(
        home.command(&zend_bin())
            .args(["ask", "--json", "--model", "no-such-model-zz", "hi"]),
        COMMAND_DEADLINE,
    );
    assert_eq!(failed.status.code(), Some(4));
    let value: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(value["is_error"], true, "{value}");
    assert!(
        value["text"]
            .as_str()
            .unwrap()
            .contains("unknown model `no-such-model-zz`"),
        "{value}"
    );
    assert_eq!(mock.completions().len(), 2);
    home.stop_daemon();
}

#[test]
fn doctor_live_calls_each_configured_provider_once_and_reports_each_result() {
    let mock = MockProvider::start();
    mock.set_for_model(
        "claude-haiku-4-5",
        Behaviour {
            fail: Some((401, r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#.into())),
            ..Behaviour::default()
        },
    );
    let home = home_with_anthropic(&mock);
    assert!(home.zend(&["models"]).status.success(), "a daemon runs");

    let out = home.zend(&["doctor", "--json", "--live"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(1), "a failed provider is a problem");
    let live = |name: &str| -> Value {
        report["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {report}"))["live"]
            .clone()
    };
    // The cheapest fast model of each provider, one output token.
    let openai = live("openai");
    assert_eq!(openai["ok"], true, "{openai}");
    assert_eq!(openai["model"], "gpt-5-nano", "{openai}");
    let anthropic = live("anthropic");
    assert_eq!(anthropic["ok"], false, "{anthropic}");
    assert_eq!(anthropic["model"], "claude-haiku-4-5", "{anthropic}");
    assert_eq!(anthropic["error_kind"], "auth", "{anthropic}");
    assert!(
        anthropic["error"]
            .as_str()
            .unwrap()
            .contains("rejected the API key"),
        "{anthropic}"
    );
    let deepseek = live("deepseek");
    assert_eq!(deepseek["ok"], true, "{deepseek}");
    assert_eq!(deepseek["model"], "deepseek-reasoner", "{deepseek}");
    assert!(live("gemini").is_null(), "not configured, not called");

    let calls: Vec<(String, Value)> = mock
        .completions()
        .iter()
        .map(|r| (r.path.clone(), r.body.clone()))
        .collect();
    assert_eq!(
        calls.len(),
        3,
        "one call per configured provider: {calls:?}"
    );
    let to = |model: &str| {
        calls
            .iter()
            .find(|(_, body)| body["model"] == model)
            .unwrap_or_else(|| panic!("nothing sent for {model}: {calls:?}"))
            .clone()
    };
    let (path, openai_call) = to("gpt-5-nano");
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(openai_call["max_completion_tokens"], 1, "{openai_call}");
    let (path, deepseek_call) = to("deepseek-reasoner");
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(deepseek_call["max_tokens"], 1, "{deepseek_call}");
    let (path, anthropic_call) = to("claude-haiku-4-5");
    assert_eq!(path, "/v1/messages");
    assert_eq!(anthropic_call["max_tokens"], 1, "{anthropic_call}");
    home.stop_daemon();
}

#[test]
fn ctrl_c_during_ask_cancels_the_call_aborts_the_upstream_and_exits_130() {
    let mock = MockProvider::start();
    // The upstream answers only when released: only the Ctrl-C can end the call.
    mock.hold();
    let home = ZenHome::with_mock(&mock);
    let mut asking = home
        .command(&zend_bin())
        .args(["ask", "--model", "gpt-5", "never mind"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        mock.wait_in_flight(1, WAIT),
        "the upstream request never started"
    );
    let sent = std::process::Command::new("kill")
        .args(["-INT", &asking.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());

    // zend hangs up on the provider while the mock still holds the request.
    wait_until("zend to close the provider connection", || {
        !mock.hangups().is_empty()
    });
    assert_eq!(mock.hangups(), ["gpt-5"]);
    let until = std::time::Instant::now() + COMMAND_DEADLINE;
    while asking.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            let _ = asking.kill();
            panic!("zend ask did not exit after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let asked = asking.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&asked.stderr);
    // Exit 130 from zend ask itself, not death by the signal (no code then).
    assert_eq!(asked.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim_end(), "zend: cancelled");
    assert!(asked.stdout.is_empty(), "{asked:?}");

    // The cancelled call is over in zend and in its ledger, not an error.
    wait_until("the cancelled call to end", || {
        home.status_json()["in_flight_calls"] == 0
    });
    let status = home.status_json();
    let row = &status["ledger"]["all_time"]["by_model"]["gpt-5"];
    assert_eq!(row["calls"], 1, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    assert_eq!(mock.billed("gpt-5").answers, 0);
    mock.release();
    home.stop_daemon();
}
