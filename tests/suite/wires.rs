//! Every wire zend speaks, streamed end to end through the real binaries:
//! Anthropic's Messages API and Gemini's `streamGenerateContent?alt=sse`
//! answer a `chat`, and the ledger holds the usage each sent, priced from
//! LiteLLM's map; a LiteLLM proxy's `x-litellm-response-cost` is what the
//! ledger records for its calls, not the map's figure.

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{FAKE_KEY, McpClient, ZenHome, result_text};

/// The answer of a `chat` call (between the header line and the footer),
/// failing on an error result.
fn chat(client: &mut McpClient, model: &str) -> String {
    let result = client.call_tool("chat", json!({"prompt": "one question", "model": model}));
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{model}: {text}");
    let (header, answer) = text
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("{model}: no header line: {text}"));
    assert!(header.starts_with("[zen] continuation_id: "), "{text}");
    let (answer, footer) = answer
        .rsplit_once("\n\n---\n")
        .unwrap_or_else(|| panic!("{model}: no footer: {text}"));
    assert!(footer.starts_with(&format!("model: {model} ")), "{text}");
    answer.to_owned()
}

fn ledger_row(home: &ZenHome, model: &str) -> Value {
    let out = home.zend(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = status["ledger"]["all_time"]["by_model"][model].clone();
    assert!(row.is_object(), "no ledger row for {model}: {status}");
    row
}

/// What LiteLLM's map (compiled into zend) charges for this usage.
fn map_cost(key: &str, input: u64, output: u64) -> f64 {
    let prices = zend::providers::litellm::lookup(key)
        .and_then(|entry| entry.prices.clone())
        .unwrap_or_else(|| panic!("{key} has no prices in LiteLLM's map"));
    input as f64 * prices.input + output as f64 * prices.output
}

fn assert_cost(row: &Value, expected: f64) {
    let recorded = row["cost_usd"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (recorded - expected).abs() < 1e-12,
        "ledger ${recorded}, expected ${expected}: {row}"
    );
}

#[test]
fn anthropic_and_gemini_stream_answers_and_the_ledger_prices_their_usage() {
    let mock = MockProvider::start();
    // Answers with a multi-byte character: each is sent in two deltas cut at
    // its middle, so a dropped delta or a bad join shows in the text.
    let sonnet_answer = "Anthropic's streamed answer — déjà vu, in two deltas.";
    let gemini_answer = "Gemini's streamed answer — naïve, in two chunks.";
    mock.set_for_model(
        "claude-sonnet-4-5",
        Behaviour {
            reply: sonnet_answer.into(),
            prompt_tokens: 1_234,
            completion_tokens: 321,
            ..Behaviour::default()
        },
    );
    mock.set_for_model(
        "gemini-2.5-pro",
        Behaviour {
            reply: gemini_answer.into(),
            prompt_tokens: 2_345,
            completion_tokens: 432,
            ..Behaviour::default()
        },
    );
    let mut home = ZenHome::with_mock(&mock);
    for (name, value) in [
        ("ANTHROPIC_API_KEY", FAKE_KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", mock.url.clone()),
        ("GEMINI_API_KEY", FAKE_KEY.to_owned()),
        ("GEMINI_BASE_URL", mock.url.clone()),
    ] {
        home.env.push((name.into(), value));
    }
    let mut client = home.session();
    assert_eq!(chat(&mut client, "claude-sonnet-4-5"), sonnet_answer);
    assert_eq!(chat(&mut client, "gemini-2.5-pro"), gemini_answer);
    client.close();

    // zend asked both to stream, and the mock streamed (text/event-stream).
    let requests = mock.completions();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].body["stream"], true, "{}", requests[0].body);
    assert_eq!(
        requests[1].path,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );

    // Anthropic reports input in message_start and output in message_delta;
    // Gemini reports the usage so far in every chunk.
    let sonnet = ledger_row(&home, "claude-sonnet-4-5");
    assert_eq!(sonnet["calls"], 1, "{sonnet}");
    assert_eq!(sonnet["errors"], 0, "{sonnet}");
    assert_eq!(sonnet["input_tokens"], 1_234, "{sonnet}");
    assert_eq!(sonnet["output_tokens"], 321, "{sonnet}");
    assert_cost(&sonnet, map_cost("claude-sonnet-4-5", 1_234, 321));
    let gemini = ledger_row(&home, "gemini-2.5-pro");
    assert_eq!(gemini["calls"], 1, "{gemini}");
    assert_eq!(gemini["errors"], 0, "{gemini}");
    assert_eq!(gemini["input_tokens"], 2_345, "{gemini}");
    assert_eq!(gemini["output_tokens"], 432, "{gemini}");
    assert_cost(&gemini, map_cost("gemini/gemini-2.5-pro", 2_345, 432));
    home.stop_daemon();
}

#[test]
fn a_litellm_proxys_cost_header_is_what_the_ledger_records() {
    let mock = MockProvider::start();
    // What the proxy says the call cost: not what the map would charge.
    let header_cost = 0.0421337;
    mock.set_for_model(
        "gpt-4o",
        Behaviour {
            reply: "answer through the proxy".into(),
            prompt_tokens: 1_000,
            completion_tokens: 100,
            headers: vec![("x-litellm-response-cost".into(), header_cost.to_string())],
            ..Behaviour::default()
        },
    );
    let mut home = ZenHome::with_mock(&mock);
    home.env.push(("LITELLM_BASE_URL".into(), mock.v1()));
    home.env.push(("LITELLM_API_KEY".into(), FAKE_KEY.into()));
    let mut client = home.session();
    assert_eq!(
        chat(&mut client, "litellm/gpt-4o"),
        "answer through the proxy"
    );
    client.close();

    let requests = mock.completions();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].body["model"], "gpt-4o");
    let row = ledger_row(&home, "litellm/gpt-4o");
    assert_eq!(row["calls"], 1, "{row}");
    assert_eq!(row["input_tokens"], 1_000, "{row}");
    assert_eq!(row["output_tokens"], 100, "{row}");
    let from_map = map_cost("gpt-4o", 1_000, 100);
    assert!((from_map - header_cost).abs() > 1e-3, "the figures differ");
    assert_cost(&row, header_cost);
    home.stop_daemon();
}
