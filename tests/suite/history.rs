//! A thread longer than a model's context window, checked on the requests the
//! provider received: the oldest turns go first, the newest stay, and every
//! request fits the input budget zen documents (60 % of a window under 300k
//! tokens, a token being a quarter of a text's bytes).

use serde_json::json;

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{ZenHome, continuation_id, estimated_input_tokens, result_text};

/// The model's context window in tokens, and the share of it for input.
const WINDOW: u64 = 6000;
const INPUT_BUDGET: u64 = WINDOW * 60 / 100;
const EXCHANGES: usize = 14;

/// The question of exchange `n` (its first line, the thread's title, has no marker).
fn question(n: usize) -> String {
    format!("Question {n}\nMARKER-Q{n:02} {}", "ipsum ".repeat(65))
}

fn answer(n: usize) -> String {
    format!("MARKER-A{n:02} {}", "lorem ".repeat(130))
}

/// The marker of turn `t` of the thread (odd turns ask, even turns answer).
fn turn_marker(t: usize) -> String {
    let exchange = t.div_ceil(2);
    if t % 2 == 1 {
        format!("MARKER-Q{exchange:02}")
    } else {
        format!("MARKER-A{exchange:02}")
    }
}

/// The `m` of "Turns 1–m were left out", or 0.
fn omitted(text: &str) -> usize {
    text.find("Turns 1–").map_or(0, |at| {
        text[at + "Turns 1–".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    })
}

#[test]
fn a_thread_longer_than_the_window_drops_its_oldest_turns_and_fits_the_budget() {
    let mock = MockProvider::start();
    mock.script(
        "tiny-window",
        (1..=EXCHANGES)
            .map(|n| Behaviour {
                reply: answer(n),
                ..Behaviour::default()
            })
            .collect(),
    );
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "models.yaml",
        &format!(
            "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\nmodels:\n  \
             tiny-window:\n    provider: openai\n    context_window: {WINDOW}\n    \
             prices: {{input: 1.0, output: 2.0}}\n"
        ),
    );
    let mut client = home.session();
    let mut thread: Option<String> = None;
    for n in 1..=EXCHANGES {
        let mut args = json!({"prompt": question(n), "model": "tiny-window"});
        if let Some(id) = &thread {
            args["continuation_id"] = json!(id);
        }
        let result = client.call_tool("chat", args);
        let text = result_text(&result);
        assert_eq!(result["isError"], false, "exchange {n}: {text}");
        thread.get_or_insert_with(|| continuation_id(&text));
    }

    // Untrimmed, the last request would not fit: the test means something.
    let whole: u64 = (1..EXCHANGES)
        .map(|n| (question(n).len() + answer(n).len()) as u64 / 4)
        .sum();
    assert!(whole > INPUT_BUDGET, "{whole} tokens of history");

    let requests = mock.completions();
    assert_eq!(requests.len(), EXCHANGES);
    let mut cut = 0;
    for (index, request) in requests.iter().enumerate() {
        let n = index + 1;
        let body = request.body.to_string();
        let tokens = estimated_input_tokens(&request.body);
        assert!(
            tokens <= INPUT_BUDGET,
            "exchange {n}: ~{tokens} tokens over the input budget of {INPUT_BUDGET}"
        );
        assert_eq!(body.matches(&format!("MARKER-Q{n:02}")).count(), 1);
        // Oldest first: the turns left out are exactly the first `left_out`, and
        // every later one is there, once.
        let left_out = omitted(&body);
        for t in 1..=2 * (n - 1) {
            let marker = turn_marker(t);
            assert_eq!(
                body.matches(&marker).count(),
                usize::from(t > left_out),
                "exchange {n} (turns 1–{left_out} left out): {marker}"
            );
        }
        assert!(
            left_out >= cut,
            "a cut never moves back: {left_out} < {cut}"
        );
        cut = left_out;
    }
    assert!(cut > 0, "the last requests left turns out");
    assert!(client.close().success());
}
