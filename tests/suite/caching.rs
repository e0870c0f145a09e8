//! Prompts that providers' caches can reuse: what zend sends on consecutive turns of a
//! thread, as the mock provider recorded it, and what the ledger makes of cached tokens.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, Recorded};
use crate::support::{FAKE_KEY, McpClient, ZenHome, result_text};

/// The continuation_id in a model tool's answer.
fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .expect("answer offers a continuation")
        + "continuation_id: ".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// A source file of about `bytes` bytes whose lines name `tag`.
fn write_source(dir: &Path, name: &str, tag: &str, bytes: usize) -> PathBuf {
    let mut text = String::new();
    let mut line = 0;
    while text.len() < bytes {
        text.push_str(&format!(
            "fn {tag}_{line}(x: u64) -> u64 {{ x.wrapping_mul({line}) ^ 0x5eed }}\n"
        ));
        line += 1;
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// One chat turn; returns the continuation id.
fn chat(
    client: &mut McpClient,
    model: &str,
    prompt: &str,
    files: &[&PathBuf],
    thread: Option<&str>,
) -> String {
    let mut args = json!({"prompt": prompt, "model": model, "absolute_file_paths": files});
    if let Some(id) = thread {
        args["continuation_id"] = json!(id);
    }
    let result = client.call_tool("chat", args);
    let text = result_text(&result);
    assert_eq!(result["isError"], false, "{text}");
    continuation_id(&text)
}

/// The request body as it went on the wire (the mock keeps the parsed JSON; serde_json
/// writes it back in the same key order, without the insignificant whitespace).
fn wire(request: &Recorded) -> String {
    request.body.to_string()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// The share of `earlier` that `later` starts with.
fn shared(earlier: &str, later: &str) -> f64 {
    common_prefix(earlier, later) as f64 / earlier.len() as f64
}

fn user_text(body: &Value) -> String {
    let content = &body["messages"][1]["content"];
    match content {
        Value::String(text) => text.clone(),
        other => panic!("one text content expected: {other}"),
    }
}

#[test]
fn consecutive_turns_share_their_prefix_and_a_changed_file_is_sent_anew_in_its_place() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "Looked at it: the mixing is fine.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let a = write_source(&work, "a.rs", "alpha", 24_000);
    let b = write_source(&work, "b.rs", "beta", 24_000);
    let c = write_source(&work, "c.rs", "gamma", 24_000);
    let mut client = home.session();

    // Turn 1 names a and b; turn 2 adds c; turns 3-4 give all three again; b changes
    // before turn 5; turn 6 gives none.
    let id = chat(&mut client, "gpt-5", "Review a and b.", &[&a, &b], None);
    chat(&mut client, "gpt-5", "And c?", &[&c], Some(&id));
    chat(
        &mut client,
        "gpt-5",
        "Anything else?",
        &[&a, &b, &c],
        Some(&id),
    );
    chat(&mut client, "gpt-5", "Sure?", &[&c, &b, &a], Some(&id));
    let mut changed = std::fs::read_to_string(&b).unwrap();
    changed = changed.replace("beta_7(", "beta_seven_renamed(");
    std::fs::write(&b, &changed).unwrap();
    chat(&mut client, "gpt-5", "I renamed one.", &[&b], Some(&id));
    chat(&mut client, "gpt-5", "Summarise.", &[], Some(&id));
    client.close();
    home.stop_daemon();

    let requests = mock.completions();
    assert_eq!(requests.len(), 6);
    let bodies: Vec<String> = requests.iter().map(wire).collect();
    let texts: Vec<String> = requests.iter().map(|r| user_text(&r.body)).collect();

    // One key for the whole thread.
    let key = &requests[0].body["prompt_cache_key"];
    assert!(key.as_str().is_some_and(|k| !k.is_empty()), "{key}");
    for request in &requests {
        assert_eq!(&request.body["prompt_cache_key"], key);
    }

    // Every file once per request, in the order the thread first named them.
    for (turn, text) in texts.iter().enumerate().skip(2) {
        let at = |path: &PathBuf| {
            let marker = format!("--- BEGIN FILE: {} ---", path.display());
            assert_eq!(
                text.matches(&marker).count(),
                1,
                "turn {}: {marker} in {:?}",
                turn + 1,
                text.lines()
                    .filter(|l| l.starts_with("--- BEGIN")
                        || l.starts_with("===")
                        || l.starts_with("("))
                    .collect::<Vec<_>>()
            );
            text.find(&marker).unwrap()
        };
        assert!(at(&a) < at(&b) && at(&b) < at(&c), "turn {}", turn + 1);
        assert!(
            text.find("=== END FILES ===") < text.find("=== CONVERSATION HISTORY ==="),
            "files before history"
        );
    }
    // The changed file is sent once, in its new version only, when given again
    // (turn 5) and when not (turn 6).
    for text in &texts[4..] {
        assert_eq!(
            text.matches("fn beta_seven_renamed(").count(),
            1,
            "new contents once"
        );
        assert!(!text.contains("fn beta_7("), "old contents gone");
    }
    // Each file's contents once in every request, however often turns named it.
    for (turn, text) in texts.iter().enumerate().skip(1) {
        for line in ["fn alpha_3(", "fn beta_3(", "fn gamma_3("] {
            assert_eq!(text.matches(line).count(), 1, "turn {}: {line}", turn + 1);
        }
    }

    // Turns that add no file share at least 95 % of the previous request as a prefix
    // (turn 2 adds c, turn 5 changes b: their prefix ends there, and the turn after
    // each shares 95 % again).
    for turn in [3, 4, 6] {
        let ratio = shared(&bodies[turn - 2], &bodies[turn - 1]);
        assert!(ratio >= 0.95, "turn {turn}: {:.1} %", ratio * 100.0);
    }
    // Turn 2 keeps a and b; turn 5 keeps a and b up to the change.
    let ratio = shared(&bodies[0], &bodies[1]);
    assert!(ratio >= 0.6, "turn 2: {:.1} %", ratio * 100.0);
    let unchanged = common_prefix(&texts[3], &texts[4]);
    let begin_b = format!("--- BEGIN FILE: {} ---", b.display());
    assert!(
        texts[3][..unchanged].contains(&begin_b)
            && texts[4][unchanged..].starts_with("seven_renamed("),
        "turn 5 shares the text up to the change in b"
    );
}

#[test]
fn a_history_cut_comes_in_large_steps_and_the_prefix_is_shared_again_after_it() {
    let mock = MockProvider::start();
    // Long answers fill a small window in a few turns.
    mock.set(Behaviour {
        reply: "An answer that goes on. ".repeat(60),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\nmodels:\n  \
         small-window:\n    provider: openai\n    context_window: 24000\n    \
         prices: {input: 1.0, output: 2.0}\n",
    );
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let file = write_source(&work, "lib.rs", "lib", 20_000);
    let mut client = home.session();
    let id = chat(&mut client, "small-window", "Start.", &[&file], None);
    for turn in 2..=16 {
        chat(
            &mut client,
            "small-window",
            &format!("Question {turn}?"),
            &[&file],
            Some(&id),
        );
    }
    client.close();
    home.stop_daemon();

    let requests = mock.completions();
    assert_eq!(requests.len(), 16);
    let bodies: Vec<String> = requests.iter().map(wire).collect();
    let texts: Vec<String> = requests.iter().map(|r| user_text(&r.body)).collect();
    let omitted = |text: &str| {
        text.find("Turns 1–").map(|at| {
            text[at + "Turns 1–".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
    };
    let cuts: Vec<Option<usize>> = texts.iter().map(|t| omitted(t)).collect();
    // Requests 1-11 fit; request 12 is over the window and the cut drops turns
    // 1-12 at once, then stays put for the 4 requests after it.
    let expected: Vec<Option<usize>> = [vec![None; 11], vec![Some(12); 5]].concat();
    assert_eq!(cuts, expected, "one cut, in one large step");
    for turn in 2..=16 {
        let ratio = shared(&bodies[turn - 2], &bodies[turn - 1]);
        if cuts[turn - 2] == cuts[turn - 1] {
            assert!(
                ratio >= 0.95,
                "turn {turn} ({cuts:?}): {:.1} %",
                ratio * 100.0
            );
        } else {
            // The system prompt and the file are still the same.
            let text = &texts[turn - 1];
            let prefix = common_prefix(&texts[turn - 2], text);
            assert!(
                prefix > text.find("=== END FILES ===").unwrap(),
                "turn {turn} keeps the files block"
            );
        }
    }
}

#[test]
fn anthropic_requests_mark_the_system_prompt_files_and_history_for_the_cache() {
    let mock = MockProvider::start();
    let mut home = ZenHome::with_mock(&mock);
    home.env.push(("ANTHROPIC_API_KEY".into(), FAKE_KEY.into()));
    home.env
        .push(("ANTHROPIC_BASE_URL".into(), mock.url.clone()));
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let file = write_source(&work, "main.rs", "main", 12_000);
    let mut client = home.session();
    let model = "claude-sonnet-4-5";
    let id = chat(&mut client, model, "What does main do?", &[&file], None);
    chat(&mut client, model, "And then?", &[&file], Some(&id));
    chat(&mut client, model, "Finally?", &[&file], Some(&id));
    client.close();
    home.stop_daemon();

    let requests = mock.completions();
    assert_eq!(requests.len(), 3);
    let mut previous: Option<Vec<Value>> = None;
    for (turn, request) in requests.iter().enumerate() {
        let body = &request.body;
        assert_eq!(request.path, "/v1/messages");
        let system = &body["system"][0];
        assert_eq!(system["cache_control"]["type"], "ephemeral", "{body}");
        assert!(system["text"].as_str().is_some_and(|s| !s.is_empty()));
        let blocks = body["messages"][0]["content"].as_array().unwrap().clone();
        let marked: Vec<usize> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.get("cache_control").is_some())
            .map(|(i, _)| i)
            .collect();
        let last = blocks.last().unwrap()["text"].as_str().unwrap();
        assert!(
            last.contains("=== NEW REQUEST ==="),
            "the request comes last: {body}"
        );
        assert!(blocks[0]["text"].as_str().unwrap().contains("BEGIN FILE"));
        if turn == 0 {
            assert_eq!(marked, [0], "turn 1: the files");
        } else {
            // The files and the end of the history: everything before the request.
            assert_eq!(marked, [0, blocks.len() - 2], "turn {}", turn + 1);
            assert!(
                blocks[blocks.len() - 2]["text"]
                    .as_str()
                    .unwrap()
                    .contains("--- Turn ")
            );
        }
        // Every block before the previous request's changing one comes again unchanged.
        if let Some(previous) = &previous {
            let kept = previous.len() - 1;
            for (i, block) in previous[..kept].iter().enumerate() {
                assert_eq!(
                    block["text"],
                    blocks[i]["text"],
                    "turn {}: block {i}",
                    turn + 1
                );
            }
        }
        previous = Some(blocks);
    }
}

#[test]
fn cached_tokens_are_priced_from_the_map_and_status_shows_what_caching_saved() {
    let mock = MockProvider::start();
    mock.set_for_model(
        "gpt-5",
        Behaviour {
            prompt_tokens: 10_000,
            cached_tokens: 8_000,
            completion_tokens: 100,
            ..Behaviour::default()
        },
    );
    mock.set_for_model(
        "claude-sonnet-4-5",
        Behaviour {
            prompt_tokens: 10_000,
            cached_tokens: 6_000,
            cache_write_tokens: 3_000,
            completion_tokens: 100,
            ..Behaviour::default()
        },
    );
    let mut home = ZenHome::with_mock(&mock);
    home.env.push(("ANTHROPIC_API_KEY".into(), FAKE_KEY.into()));
    home.env
        .push(("ANTHROPIC_BASE_URL".into(), mock.url.clone()));
    let mut client = home.session();
    let answer = client.call_tool("chat", json!({"prompt": "hi", "model": "gpt-5"}));
    let text = result_text(&answer);
    assert!(
        text.contains("prompt cache: 8000 of 10000 input tokens cached"),
        "{text}"
    );
    let answer = client.call_tool(
        "chat",
        json!({"prompt": "hi", "model": "claude-sonnet-4-5"}),
    );
    assert_eq!(answer["isError"], false, "{}", result_text(&answer));
    client.close();

    // LiteLLM's map: gpt-5 input 1.25e-6, cached 1.25e-7, output 1e-5;
    // claude-sonnet-4-5 input 3e-6, cache read 3e-7, cache write 3.75e-6, output 1.5e-5.
    let gpt5 = 2_000.0 * 1.25e-6 + 8_000.0 * 1.25e-7 + 100.0 * 1e-5;
    let gpt5_saved = 8_000.0 * (1.25e-6 - 1.25e-7);
    let sonnet = 1_000.0 * 3e-6 + 6_000.0 * 3e-7 + 3_000.0 * 3.75e-6 + 100.0 * 1.5e-5;
    let sonnet_saved = 6_000.0 * (3e-6 - 3e-7) - 3_000.0 * (3.75e-6 - 3e-6);
    let out = home.zend(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ledger = &status["ledger"];
    let row = |model: &str| ledger["all_time"]["by_model"][model].clone();
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;
    assert!(close(&row("gpt-5")["cost_usd"], gpt5), "{}", row("gpt-5"));
    assert!(close(&row("gpt-5")["cache_saved_usd"], gpt5_saved));
    assert_eq!(row("gpt-5")["cached_tokens"], 8_000);
    let sonnet_row = row("claude-sonnet-4-5");
    assert!(close(&sonnet_row["cost_usd"], sonnet), "{sonnet_row}");
    assert!(
        close(&sonnet_row["cache_saved_usd"], sonnet_saved),
        "{sonnet_row}"
    );
    assert_eq!(sonnet_row["cache_write_tokens"], 3_000);
    let today = &ledger["today"]["total"];
    assert!(
        close(&today["cache_saved_usd"], gpt5_saved + sonnet_saved),
        "{today}"
    );

    let table = String::from_utf8_lossy(&home.zend(&["status"]).stdout).into_owned();
    // The table shows the JSON's figure, formatted as every amount is.
    let line = format!(
        "prompt caching saved {} today",
        zend::util::usd(today["cache_saved_usd"].as_f64().unwrap_or(f64::NAN))
    );
    assert!(table.contains(&line), "{line} in {table}");
    home.stop_daemon();
}
