//! Conversation threads' limits end to end: a thread past `threads.ttl_hours`
//! is swept from the store and refused with the documented error, a thread
//! within it continues; a thread at `threads.max_turns` (50) refuses the next
//! exchange before any model is called.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider, last_user_text};
use crate::support::{WAIT, ZenHome, result_text};
use zend::memory::{NewThread, NewTurn, ThreadId};
use zend::time::{ManualClock, Timestamp};

/// `limits.yaml` with a one-hour TTL and the default turn cap.
const LIMITS: &str = "threads:\n  ttl_hours: 1\n  sweep_interval_secs: 3600\n";

fn ago(duration: Duration) -> Timestamp {
    Timestamp::from_system_time(SystemTime::now() - duration)
}

/// Writes a thread of one exchange into the home's store (no zend running)
/// as if its last turn was at `at`; returns its id.
fn seed_thread(home: &ZenHome, at: Timestamp, prompt: &str, answer: &str) -> ThreadId {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::fs::create_dir_all(home.path().join("data")).unwrap();
    runtime.block_on(async {
        let limits = zend::config::LimitsConfig::default();
        let data = zend::data::Data::open_with(
            &home.path().join("data"),
            &limits,
            Arc::new(ManualClock::new(at)),
        )
        .unwrap();
        let id = data
            .threads()
            .create(NewThread {
                tool: "chat".into(),
                session_id: "seeded".into(),
                client: "zen-e2e".into(),
                cwd: None,
                parent: None,
                first_prompt: prompt.into(),
            })
            .await
            .unwrap();
        data.threads()
            .append(&id, NewTurn::user("chat", prompt))
            .await
            .unwrap();
        data.threads()
            .append(&id, NewTurn::assistant("chat", "gpt-5", "openai", answer))
            .await
            .unwrap();
        data.close().await.unwrap();
        id
    })
}

/// Whether the store holds the thread at all, read as of `at` (so that an
/// expired thread that was not removed would still be found).
fn stored(home: &ZenHome, id: &ThreadId, at: Timestamp) -> bool {
    let data = zend::data::Data::open_with(
        &home.path().join("data"),
        &zend::config::LimitsConfig::default(),
        Arc::new(ManualClock::new(at)),
    )
    .unwrap();
    data.threads().summary(id).is_ok()
}

fn chat(client: &mut crate::support::McpClient, continuation: Option<&str>) -> Value {
    let mut arguments = json!({"prompt": "and then?", "model": "gpt-5"});
    if let Some(id) = continuation {
        arguments["continuation_id"] = json!(id);
    }
    client.call_tool("chat", arguments)
}

#[test]
fn a_thread_past_its_ttl_is_swept_and_refused_and_one_within_it_continues() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "continued".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", LIMITS);
    let two_hours_ago = ago(Duration::from_secs(2 * 3600));
    let old = seed_thread(&home, two_hours_ago, "OLD-PROMPT", "OLD-ANSWER");
    let recent = seed_thread(
        &home,
        ago(Duration::from_secs(30 * 60)),
        "RECENT-PROMPT",
        "RECENT-ANSWER",
    );
    assert!(stored(&home, &old, two_hours_ago));

    // zend sweeps expired threads once at start.
    let mut client = home.session();
    let until = Instant::now() + WAIT;
    loop {
        let logs = home.zend(&["logs", "-n", "1000"]);
        if String::from_utf8_lossy(&logs.stdout).contains("removed expired threads") {
            break;
        }
        assert!(Instant::now() < until, "no sweep logged");
        std::thread::sleep(Duration::from_millis(50));
    }

    let refused = chat(&mut client, Some(&old.to_string()));
    let text = result_text(&refused);
    assert_eq!(refused["isError"], true, "{text}");
    assert!(
        text.contains(&format!(
            "no conversation thread {old}: it never existed or expired"
        )) && text.contains("threads are kept for 1h 0m after their last turn")
            && text.contains("start a new conversation without continuation_id"),
        "{text}"
    );
    assert!(mock.completions().is_empty(), "a model was called");

    let continued = chat(&mut client, Some(&recent.to_string()));
    let text = result_text(&continued);
    assert_eq!(continued["isError"], false, "{text}");
    assert!(text.contains("continued"), "{text}");
    let sent = last_user_text(&mock.completions()[0].body);
    assert!(
        sent.contains("RECENT-PROMPT") && sent.contains("RECENT-ANSWER"),
        "the recent thread's history is sent: {sent}"
    );
    client.close();
    home.stop_daemon();

    // Removed from the store, not only refused; the recent thread is kept.
    assert!(!stored(&home, &old, two_hours_ago), "{old} is still stored");
    assert!(stored(&home, &recent, two_hours_ago));
}

#[test]
fn the_fifty_first_turn_is_refused_before_any_model_call() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    let first = chat(&mut client, None);
    let text = result_text(&first);
    assert_eq!(first["isError"], false, "{text}");
    let id = text
        .strip_prefix("[zen] continuation_id: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no continuation id: {text}"))
        .to_owned();

    // Exchanges 2..=25 bring the thread to 50 turns; the footer counts down.
    for exchange in 2..=25 {
        let result = chat(&mut client, Some(&id));
        let text = result_text(&result);
        assert_eq!(result["isError"], false, "exchange {exchange}: {text}");
        let left = 25 - exchange;
        assert!(
            text.contains(&format!("continuation_id: {id} ({left} turns left)")),
            "exchange {exchange}: {text}"
        );
    }
    assert_eq!(mock.completions().len(), 25);

    let refused = chat(&mut client, Some(&id));
    let text = result_text(&refused);
    assert_eq!(refused["isError"], true, "{text}");
    assert!(
        text.contains(&format!(
            "conversation thread {id} has reached its maximum of 50 turns (threads.max_turns in limits.yaml)"
        )) && text.contains("start a new conversation without continuation_id"),
        "{text}"
    );
    assert_eq!(
        mock.completions().len(),
        25,
        "the refused call reached the model"
    );
    client.close();

    let shown = home.zend(&["threads", "show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["turns"].as_array().map(Vec::len), Some(50), "{shown}");
    home.stop_daemon();
}
