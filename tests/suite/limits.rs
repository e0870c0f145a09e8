//! limits.yaml's per-tool caps under load, through the real binaries: several
//! shim sessions at once against one zend. The mock counts the requests it
//! gets and how many it holds at once; the tests count admitted and refused
//! calls, never time them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{McpClient, WAIT, ZenHome, result_text};

fn sessions(home: &ZenHome, n: usize) -> Vec<McpClient> {
    (0..n).map(|_| home.session()).collect()
}

fn chat_args(prompt: &str) -> Value {
    json!({"prompt": prompt, "model": "gpt-5"})
}

/// The `tools/call` result of request `id`.
fn result_of(client: &mut McpClient, id: u64) -> Value {
    let response = client.response_to(id);
    response
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("tools/call failed: {response}"))
}

/// Splits answers into (answered, refused texts).
fn tally(results: &[Value]) -> (usize, Vec<String>) {
    let answered = results.iter().filter(|r| r["isError"] == false).count();
    let refused = results
        .iter()
        .filter(|r| r["isError"] == true)
        .map(result_text)
        .collect();
    (answered, refused)
}

#[test]
fn the_concurrency_cap_holds_across_sessions_and_the_queue_is_bounded() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "tools:\n  chat:\n    concurrency: 2\n");
    let mut clients = sessions(&home, 7);
    // The provider holds every request: two calls run, the rest queue.
    mock.hold();
    let ids: Vec<u64> = clients
        .iter_mut()
        .enumerate()
        .map(|(i, c)| c.send_tool_call("chat", chat_args(&format!("question {i}"))))
        .collect();
    assert!(
        mock.wait_in_flight(2, WAIT),
        "two calls reach the provider: {:?}",
        mock.in_flight()
    );
    // 2 running + a queue of 4 (twice the cap): exactly one of the seven is
    // refused while the others wait, whatever order they arrived in.
    let mut refused = None;
    let until = std::time::Instant::now() + WAIT;
    while refused.is_none() && std::time::Instant::now() < until {
        for (i, client) in clients.iter_mut().enumerate() {
            if let Some(message) = client.try_recv(Duration::from_millis(20)) {
                assert_eq!(message["id"], ids[i], "{message}");
                refused = Some((i, message["result"].clone()));
                break;
            }
        }
    }
    let (refused_at, refusal) = refused.expect("one call is refused while the queue is full");
    assert_eq!(refusal["isError"], true, "{refusal}");
    let text = result_text(&refusal);
    assert!(
        text.contains("busy") && text.contains("concurrency cap") && text.contains("retry in"),
        "{text}"
    );
    assert_eq!(mock.in_flight().0, 2, "still only two at the provider");
    mock.release();
    let results: Vec<Value> = clients
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| *i != refused_at)
        .map(|(i, c)| result_of(c, ids[i]))
        .collect();
    let (answered, refused) = tally(&results);
    assert_eq!((answered, refused.len()), (6, 0), "{refused:?}");
    assert_eq!(mock.completions().len(), 6);
    assert_eq!(mock.in_flight().1, 2, "never more than the cap at once");
}

#[test]
fn rpm_holds_across_sessions_calling_at_once() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "tools:\n  chat:\n    rpm: 3\n");
    let mut clients = sessions(&home, 5);
    let ids: Vec<u64> = clients
        .iter_mut()
        .map(|c| c.send_tool_call("chat", chat_args("at once")))
        .collect();
    let results: Vec<Value> = clients
        .iter_mut()
        .zip(&ids)
        .map(|(c, id)| result_of(c, *id))
        .collect();
    let (answered, refused) = tally(&results);
    assert_eq!(answered, 3, "{refused:?}");
    assert_eq!(refused.len(), 2);
    for text in &refused {
        assert!(
            text.contains("3 calls per minute across all sessions") && text.contains("retry in"),
            "{text}"
        );
    }
    assert_eq!(mock.completions().len(), 3);
    // The cap is chat's: another tool still calls the model.
    let other = clients[0].call_tool(
        "thinkdeep",
        json!({"prompt": "still allowed?", "model": "gpt-5"}),
    );
    assert_eq!(other["isError"], false, "{}", result_text(&other));
}

#[test]
fn tpm_counts_what_calls_really_used_across_sessions() {
    let mock = MockProvider::start();
    // Each answer bills 10000 tokens, far more than its prompt is estimated at.
    mock.set(Behaviour {
        prompt_tokens: 9000,
        completion_tokens: 1000,
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "tools:\n  chat:\n    tpm: 15000\n");
    let mut clients = sessions(&home, 3);
    // First: 0 used. Second: 10000 used + a small estimate fits in 15000.
    for client in &mut clients[..2] {
        let answer = client.call_tool("chat", chat_args("a short prompt"));
        assert_eq!(answer["isError"], false, "{}", result_text(&answer));
    }
    // Third: 20000 really used in the last minute (estimates alone would fit).
    let refused = clients[2].call_tool("chat", chat_args("a short prompt"));
    assert_eq!(refused["isError"], true);
    let text = result_text(&refused);
    assert!(
        text.contains("15000 tokens per minute across all sessions")
            && text.contains("20000 were used")
            && text.contains("retry in "),
        "{text}"
    );
    assert_eq!(
        mock.completions().len(),
        2,
        "the refused call never reached the provider"
    );
    // The window is chat's: another tool's model calls go on.
    let other = clients[2].call_tool("thinkdeep", json!({"prompt": "x", "model": "gpt-5"}));
    assert_eq!(other["isError"], false, "{}", result_text(&other));
}
