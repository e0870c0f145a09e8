//! `consensus` checked on what the provider received: every round's requests
//! held at the mock until all have arrived (parallel: the most in flight is the
//! number of models), answered one at a time in a known order; round 1 blind,
//! later rounds carrying the others' latest answers, a model failing later
//! keeping its earlier answer, and the synthesis seeing the last round.

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{WAIT, ZenHome, result_text, wait_until};

/// The participants in the order the mock answers them; the last fails every round.
const MODELS: [&str; 4] = ["gpt-5", "o3", "gpt-4.1", "gpt-4o"];

/// A distinctive answer per model and round (gpt-4o never answers).
fn token(model: &str, round: usize) -> String {
    let bird = match model {
        "gpt-5" => "KESTREL",
        "o3" => "OSPREY",
        "gpt-4.1" => "HERON",
        other => panic!("{other} gives no answer"),
    };
    format!("{bird}-ROUND-{round}")
}

fn answer(text: String) -> Behaviour {
    Behaviour {
        reply: text,
        ..Behaviour::default()
    }
}

fn failure() -> Behaviour {
    Behaviour {
        fail: Some((400, r#"{"error":{"message":"bad model"}}"#.into())),
        ..Behaviour::default()
    }
}

/// Waits until every model's request of `round` is held at the mock (false if
/// they never were all there at once), then answers them one by one in `MODELS`' order.
fn answer_round(mock: &MockProvider, round: usize) -> bool {
    let all_arrived = mock.wait_in_flight(MODELS.len(), WAIT);
    for model in MODELS {
        mock.release_one(model);
        wait_until(
            &format!("the mock to answer {model} in round {round}"),
            || mock.answered(model) == round,
        );
    }
    all_arrived
}

#[test]
fn rounds_are_parallel_blind_then_informed_and_the_synthesis_sees_the_last() {
    let mock = MockProvider::start();
    mock.set(answer("SYNTHESIS-GANNET".into()));
    for model in ["gpt-5", "o3"] {
        mock.script(model, (1..=3).map(|r| answer(token(model, r))).collect());
    }
    // gpt-4.1 answers round 1, then fails: its round-1 answer stands.
    mock.script(
        "gpt-4.1",
        vec![answer(token("gpt-4.1", 1)), failure(), failure()],
    );
    mock.script("gpt-4o", vec![failure(), failure(), failure()]);
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    mock.hold();
    let id = client.send_tool_call(
        "consensus",
        json!({"prompt": "Should we adopt redb?", "rounds": 3, "synthesis_model": "gpt-5-mini",
        "models": [
            {"model": "gpt-5", "stance": "for"},
            {"model": "o3", "stance": "against", "instructions": "Focus on durability."},
            {"model": "gpt-4.1"},
            {"model": "gpt-4o"}
        ]}),
    );
    let all_at_once: Vec<bool> = (1..=3).map(|round| answer_round(&mock, round)).collect();
    mock.release();
    let response = client.response_to(id);
    let result = &response["result"];
    let text = result_text(result);
    assert_eq!(result["isError"], false, "{text}");

    // Each model's requests in arrival order are its rounds; then the synthesis.
    let bodies = |model: &str| -> Vec<String> {
        mock.completions()
            .iter()
            .filter(|r| r.body["model"] == model)
            .map(|r| r.body.to_string())
            .collect()
    };
    let rounds: Vec<(&str, Vec<String>)> = MODELS.iter().map(|m| (*m, bodies(m))).collect();
    for (model, sent) in &rounds {
        assert_eq!(sent.len(), 3, "{model} is asked once per round");
    }
    let all_tokens: Vec<String> = ["gpt-5", "o3", "gpt-4.1"]
        .iter()
        .flat_map(|m| (1..=3).map(|r| token(m, r)))
        .collect();

    // Blind: although every round-1 answer existed before the last of them was
    // sent back, no round-1 request carries any answer.
    for (model, sent) in &rounds {
        for answer in &all_tokens {
            assert!(
                !sent[0].contains(answer.as_str()),
                "{model}'s round-1 request carries {answer}: {}",
                sent[0]
            );
        }
    }
    assert_eq!(
        all_at_once,
        [true, true, true],
        "not every round had all its requests in flight at once (at most {})",
        mock.in_flight().1
    );
    assert_eq!(
        mock.in_flight().1,
        MODELS.len(),
        "the most requests in flight is one per model"
    );

    // Round 2 carries the others' round-1 answers, round 3 their latest
    // (gpt-4.1's round-1 answer, kept), never the model's own.
    let latest = |model: &str, round: usize| match model {
        "gpt-4.1" => Some(token(model, 1)),
        "gpt-4o" => None,
        _ => Some(token(model, round)),
    };
    for (model, sent) in &rounds {
        for round in 2..=3 {
            let body = &sent[round - 1];
            for other in MODELS {
                let Some(expected) = latest(other, round - 1) else {
                    continue;
                };
                assert_eq!(
                    body.contains(&expected),
                    other != *model,
                    "{model}'s round-{round} request and {other}'s answer {expected}: {body}"
                );
            }
            if round == 3 {
                for stale in ["gpt-5", "o3"].map(|m| token(m, 1)) {
                    assert!(!body.contains(&stale), "{model} round 3 has {stale}");
                }
            }
        }
    }

    // The synthesis sees the last round: the latest answers and nothing older.
    let synthesis = bodies("gpt-5-mini");
    assert_eq!(synthesis.len(), 1);
    for model in ["gpt-5", "o3", "gpt-4.1"] {
        for round in 1..=3 {
            let answer = token(model, round);
            let wanted = latest(model, 3) == Some(answer.clone());
            assert_eq!(
                synthesis[0].contains(&answer),
                wanted,
                "synthesis and {answer}"
            );
            assert_eq!(
                text.contains(&answer),
                wanted,
                "result and {answer}: {text}"
            );
        }
    }
    assert!(text.contains("SYNTHESIS-GANNET"), "{text}");
    assert!(text.contains("gpt-4o (neutral): FAILED"), "{text}");
    assert!(!text.contains("gpt-4.1 (neutral): FAILED"), "{text}");
    assert!(text.contains("continuation_id: "), "{text}");

    // Stances and instructions reach the system prompt.
    let against: Value = serde_json::from_str(&rounds[1].1[0]).unwrap();
    let system = against["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("CRITICAL") && system.contains("Focus on durability."),
        "{system}"
    );
}
