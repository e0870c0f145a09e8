//! Threads against a real store in a temporary directory, with a manual clock.

use std::time::Duration;

use serde_json::json;

use super::history::{self, HISTORY_END, HISTORY_START, estimate_tokens, token_budget_for};
use super::*;
use crate::config::{LimitsConfig, MemoryConfig};
use crate::data::test_support::{open_store, reopen};
use crate::store::test_support::capture_warnings;
use crate::store::{TreeId, trees};
use crate::time::Clock;

fn limits(ttl_hours: u64, max_turns: u32) -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    limits.threads.ttl_hours = ttl_hours;
    limits.threads.max_turns = max_turns;
    limits
}

fn new_thread(tool: &str, cwd: &str, prompt: &str) -> NewThread {
    NewThread {
        tool: tool.into(),
        session_id: "session-1".into(),
        client: "claude-code".into(),
        cwd: Some(cwd.into()),
        parent: None,
        first_prompt: prompt.into(),
    }
}

#[tokio::test]
async fn a_thread_round_trips_across_tools() {
    let (_dir, store, clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    let id = threads
        .create(new_thread(
            "chat",
            "/src/zen",
            "\n  Why does the shim hang?\nmore detail",
        ))
        .await
        .unwrap();
    let first = threads
        .append(
            &id,
            NewTurn::user("chat", "Why does the shim hang?").with_files(["src/a.rs"]),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        AppendOutcome {
            turn_count: 1,
            remaining_turns: 49
        }
    );
    clock.advance(Duration::from_secs(5));
    threads
        .append(
            &id,
            NewTurn::assistant("chat", "gpt-5", "openai", "Because of EOF."),
        )
        .await
        .unwrap();
    threads
        .append(
            &id,
            NewTurn::user("thinkdeep", "Think harder").with_images(["shot.png"]),
        )
        .await
        .unwrap();
    threads
        .append(
            &id,
            NewTurn::assistant("codereview", "o3", "openai", "LGTM"),
        )
        .await
        .unwrap();

    let thread = threads.get(&id).unwrap();
    assert_eq!(thread.summary.title, "Why does the shim hang?");
    assert_eq!(thread.summary.tools, ["chat", "thinkdeep", "codereview"]);
    assert_eq!(thread.summary.models, ["gpt-5", "o3"]);
    assert_eq!(thread.summary.turn_count, 4);
    assert_eq!(thread.summary.client, "claude-code");
    assert_eq!(thread.summary.cwd.as_deref(), Some("/src/zen"));
    assert_eq!(thread.summary.updated, clock.now());
    assert_eq!(
        thread.summary.expires,
        clock.now().saturating_add(Duration::from_secs(72 * 3600))
    );
    assert_eq!(thread.turns.len(), 4);
    assert_eq!(thread.turns[0].files, ["src/a.rs"]);
    assert_eq!(
        thread.turns[0].tokens,
        estimate_tokens("Why does the shim hang?")
    );
    assert_eq!(thread.turns[1].role, Role::Assistant);
    assert_eq!(thread.turns[1].model.as_deref(), Some("gpt-5"));
    assert_eq!(thread.turns[1].provider.as_deref(), Some("openai"));
    assert_eq!(thread.turns[2].images, ["shot.png"]);

    // The JSON a client gets is flat and round-trips.
    let value = serde_json::to_value(&thread).unwrap();
    assert_eq!(value["id"], json!(id.to_string()));
    assert_eq!(value["turns"][1]["role"], json!("assistant"));
    let back: Thread = serde_json::from_value(value).unwrap();
    assert_eq!(back, thread);

    let parsed: ThreadId = id.to_string().parse().unwrap();
    assert_eq!(parsed, id);
    let err = "not-a-uuid".parse::<ThreadId>().unwrap_err().to_string();
    assert!(err.contains("not a thread id"), "{err}");
}

#[tokio::test]
async fn threads_survive_a_reopen() {
    let (dir, store, _clock) = open_store(LimitsConfig::default());
    let id = store
        .threads()
        .create(new_thread("chat", "/x", "hello"))
        .await
        .unwrap();
    store
        .threads()
        .append(&id, NewTurn::user("chat", "hello"))
        .await
        .unwrap();
    store
        .threads()
        .set_workflow_state(&id, "debug", &json!({"step": 2}))
        .await
        .unwrap();
    let before = store.threads().get(&id).unwrap();
    drop(store);

    let (store, _clock) = reopen(&dir, LimitsConfig::default());
    assert_eq!(store.threads().get(&id).unwrap(), before);
    assert_eq!(
        store.threads().workflow_state(&id, "debug").unwrap(),
        Some(json!({"step": 2}))
    );
    let outcome = store
        .threads()
        .append(&id, NewTurn::assistant("chat", "m", "p", "hi"))
        .await
        .unwrap();
    assert_eq!(outcome.turn_count, 2);
}

#[tokio::test]
async fn threads_expire_after_the_ttl_since_their_last_turn() {
    let (_dir, store, clock) = open_store(limits(1, 50));
    let threads = store.threads();
    let id = threads
        .create(new_thread("chat", "/x", "hi"))
        .await
        .unwrap();
    let other = threads
        .create(new_thread("chat", "/x", "other"))
        .await
        .unwrap();

    // Each turn refreshes the TTL.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(50 * 60));
        threads
            .append(&id, NewTurn::user("chat", "still here"))
            .await
            .unwrap();
    }
    assert!(matches!(
        threads.get(&other),
        Err(ThreadError::Expired { .. })
    ));
    let listed: Vec<_> = threads
        .list(&ThreadFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [id]);

    clock.advance(Duration::from_secs(61 * 60));
    let err = threads
        .append(&id, NewTurn::user("chat", "too late"))
        .await
        .unwrap_err();
    assert!(matches!(err, ThreadError::Expired { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("kept for 1h 0m after their last turn"),
        "{message}"
    );
    assert!(message.contains("threads.ttl_hours"), "{message}");
    assert!(threads.list(&ThreadFilter::default()).unwrap().is_empty());

    // The sweeper removes both, with their turns and workflow state.
    assert_eq!(threads.sweep_expired().await.unwrap(), 2);
    assert_eq!(threads.sweep_expired().await.unwrap(), 0);
    let err = threads.get(&id).unwrap_err();
    assert!(matches!(err, ThreadError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("kept for 1h 0m"), "{err}");
    for tree in [trees::THREADS, trees::TURNS, trees::THREADS_BY_UPDATED] {
        assert_eq!(store.store().tree_len(tree), 0, "{tree}");
    }
}

#[tokio::test]
async fn the_sweeper_leaves_live_threads_alone() {
    let (_dir, store, clock) = open_store(limits(1, 50));
    let threads = store.threads();
    let old = threads
        .create(new_thread("chat", "/x", "old"))
        .await
        .unwrap();
    threads
        .set_workflow_state(&old, "debug", &json!(1))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let young = threads
        .create(new_thread("chat", "/x", "young"))
        .await
        .unwrap();
    threads
        .append(&young, NewTurn::user("chat", "x"))
        .await
        .unwrap();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let sweeper = spawn_sweeper(threads.clone(), shutdown.clone());
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.store().tree_len(trees::THREADS) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    shutdown.cancel();
    sweeper.await.unwrap();
    assert_eq!(store.store().tree_len(trees::WORKFLOW), 0);
    assert_eq!(threads.get(&young).unwrap().turns.len(), 1);
}

#[tokio::test]
async fn appends_past_max_turns_are_refused() {
    let (_dir, store, _clock) = open_store(limits(72, 3));
    let threads = store.threads();
    let id = threads
        .create(new_thread("chat", "/x", "hi"))
        .await
        .unwrap();
    let mut remaining = Vec::new();
    for i in 0..3 {
        let outcome = threads
            .append(&id, NewTurn::user("chat", format!("turn {i}")))
            .await
            .unwrap();
        remaining.push(outcome.remaining_turns);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let err = threads
        .append(&id, NewTurn::user("chat", "one more"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ThreadError::TooManyTurns { max: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("maximum of 3 turns"), "{err}");
    assert_eq!(threads.get(&id).unwrap().turns.len(), 3);
}

#[tokio::test]
async fn an_exchange_starts_a_thread_and_lands_whole_or_not_at_all() {
    let (_dir, store, clock) = open_store(limits(72, 3));
    let threads = store.threads();
    let exchange = |question: &str| {
        vec![
            NewTurn::user("chat", question),
            NewTurn::assistant("chat", "gpt-5", "openai", format!("answer to {question}")),
        ]
    };
    let (id, outcome) = threads
        .write_turns(
            ThreadTarget::New(new_thread("chat", "/x", "first question")),
            exchange("first question"),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            turn_count: 2,
            remaining_turns: 1
        }
    );
    store.flush().await.unwrap();
    let thread = threads.get(&id).unwrap();
    assert_eq!(thread.summary.title, "first question");
    assert_eq!(thread.summary.turn_count, 2);
    assert_eq!(thread.summary.models, ["gpt-5"]);
    let texts: Vec<&str> = thread.turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["first question", "answer to first question"]);
    assert_eq!(
        threads.list(&ThreadFilter::default()).unwrap()[0].id,
        id,
        "the recency index has the new thread"
    );

    // Two more turns do not fit in max 3: neither is written.
    clock.advance(Duration::from_secs(1));
    let err = threads
        .write_turns(ThreadTarget::Existing(id), exchange("second"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ThreadError::TooManyTurns { max: 3, .. }),
        "{err:?}"
    );
    let after = threads.get(&id).unwrap();
    assert_eq!(after.turns.len(), 2);
    assert_eq!(after.summary.updated, thread.summary.updated);
    // One still does.
    threads
        .write_turns(
            ThreadTarget::Existing(id),
            vec![NewTurn::user("chat", "last")],
        )
        .await
        .unwrap();
    assert_eq!(threads.get(&id).unwrap().turns.len(), 3);
}

#[tokio::test]
async fn an_exchange_is_one_key_and_single_turns_read_in_order() {
    let (dir, store, clock) = open_store(limits(72, 50));
    let threads = store.threads();
    let id = threads
        .create(new_thread("chat", "/x", "one"))
        .await
        .unwrap();
    // A write of one turn stores a plain `Turn` under its index.
    threads
        .append(&id, NewTurn::user("chat", "one"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    threads
        .append(&id, NewTurn::assistant("chat", "gpt-5", "openai", "two"))
        .await
        .unwrap();
    let snapshot = store.store().read().unwrap();
    assert_eq!(
        snapshot.scan_prefix(TreeId::Turns, id.as_bytes()).count(),
        2
    );

    // An exchange: two turns, one value (a JSON array) under the first one's index.
    clock.advance(Duration::from_secs(1));
    threads
        .write_turns(
            ThreadTarget::Existing(id),
            vec![
                NewTurn::user("chat", "three"),
                NewTurn::assistant("chat", "gpt-5", "openai", "four"),
            ],
        )
        .await
        .unwrap();
    threads
        .write_turns(
            ThreadTarget::Existing(id),
            vec![
                NewTurn::user("chat", "five"),
                NewTurn::assistant("chat", "gpt-5", "openai", "six"),
            ],
        )
        .await
        .unwrap();
    let snapshot = store.store().read().unwrap();
    let keys: Vec<Vec<u8>> = snapshot
        .scan_prefix(TreeId::Turns, id.as_bytes())
        .map(|entry| entry.unwrap().0[16..].to_vec())
        .collect();
    let indexes: Vec<u32> = keys
        .iter()
        .map(|k| u32::from_be_bytes(k[..].try_into().unwrap()))
        .collect();
    assert_eq!(
        indexes,
        [0, 1, 2, 4],
        "one key per write, keyed by its first turn"
    );
    let packed = snapshot
        .get(
            TreeId::Turns,
            &[id.as_bytes().as_slice(), &2_u32.to_be_bytes()].concat(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(packed.first(), Some(&b'['));

    let texts =
        |thread: &Thread| -> Vec<String> { thread.turns.iter().map(|t| t.text.clone()).collect() };
    let thread = threads.get(&id).unwrap();
    assert_eq!(
        texts(&thread),
        ["one", "two", "three", "four", "five", "six"]
    );
    assert_eq!(thread.summary.turn_count, 6);
    assert_eq!(thread.turns[3].role, Role::Assistant);

    // The same after a reopen, and the next exchange goes after them.
    drop((threads, snapshot, packed));
    store.close().await.unwrap();
    drop(store);
    let (store, _clock) = reopen(&dir, limits(72, 50));
    let threads = store.threads();
    let (_, outcome) = threads
        .write_turns(
            ThreadTarget::Existing(id),
            vec![
                NewTurn::user("chat", "seven"),
                NewTurn::assistant("chat", "gpt-5", "openai", "eight"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome.turn_count, 8);
    let thread = threads.get(&id).unwrap();
    assert_eq!(
        texts(&thread),
        [
            "one", "two", "three", "four", "five", "six", "seven", "eight"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_all_land_in_order() {
    const TASKS: usize = 16;
    const EACH: usize = 12;
    let (_dir, store, _clock) = open_store(limits(72, 1000));
    let id = store
        .threads()
        .create(new_thread("chat", "/x", "busy"))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let threads = store.threads().clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                threads
                    .append(&id, NewTurn::user("chat", format!("{task}:{i}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let thread = store.threads().get(&id).unwrap();
    assert_eq!(thread.turns.len(), TASKS * EACH);
    assert_eq!(thread.summary.turn_count as usize, TASKS * EACH);
    let mut next = [0_usize; TASKS];
    for turn in &thread.turns {
        let (task, i) = turn.text.split_once(':').unwrap();
        let (task, i): (usize, usize) = (task.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[task], "task {task} out of order");
        next[task] += 1;
    }
}

#[tokio::test]
async fn listing_is_recent_first_and_filters() {
    let (_dir, store, clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    let a = threads
        .create(new_thread("chat", "/src/zen", "Shim hangs"))
        .await
        .unwrap();
    threads
        .append(
            &a,
            NewTurn::assistant("chat", "gpt-5", "openai", "the socket"),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let b = threads
        .create(new_thread("codereview", "/src/other", "Review parser"))
        .await
        .unwrap();
    threads
        .append(
            &b,
            NewTurn::assistant("codereview", "gemini-2.5-pro", "google", "fine"),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let c = threads
        .create(new_thread("chat", "/src/zen/daemon", "Budget design"))
        .await
        .unwrap();
    threads
        .append(&c, NewTurn::user("thinkdeep", "mentions the SOCKET too"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    // Appending moves a thread to the front.
    threads
        .append(&a, NewTurn::user("chat", "again"))
        .await
        .unwrap();

    let ids = |filter: ThreadFilter| -> Vec<ThreadId> {
        threads
            .list(&filter)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(ids(ThreadFilter::default()), [a, c, b]);
    assert_eq!(
        ids(ThreadFilter {
            limit: 2,
            ..Default::default()
        }),
        [a, c]
    );
    assert_eq!(
        ids(ThreadFilter {
            cwd: Some("/src/zen".into()),
            ..Default::default()
        }),
        [a, c]
    );
    assert_eq!(
        ids(ThreadFilter {
            tool: Some("ThinkDeep".into()),
            ..Default::default()
        }),
        [c]
    );
    assert_eq!(
        ids(ThreadFilter {
            model: Some("gemini".into()),
            ..Default::default()
        }),
        [b]
    );
    assert_eq!(
        ids(ThreadFilter {
            text: Some("socket".into()),
            ..Default::default()
        }),
        [a, c]
    );
    assert_eq!(
        ids(ThreadFilter {
            text: Some("parser".into()),
            ..Default::default()
        }),
        [b]
    );

    let listing = threads.list(&ThreadFilter::default()).unwrap();
    let text = render::render_list(&listing, clock.now());
    assert!(
        text.starts_with(&format!(
            "{a}  0s ago  2 turns  chat  gpt-5  /src/zen\n    Shim hangs\n"
        )),
        "{text}"
    );
    assert!(text.contains("chat → thinkdeep"), "{text}");
    let json = serde_json::to_value(&listing).unwrap();
    assert_eq!(json[0]["title"], json!("Shim hangs"));
    assert!(render::render_list(&[], clock.now()).contains("No conversation threads"));
}

#[tokio::test]
async fn workflow_state_is_per_thread_and_tool() {
    let (_dir, store, _clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    let one = threads
        .create(new_thread("debug", "/x", "a"))
        .await
        .unwrap();
    let two = threads
        .create(new_thread("debug", "/x", "b"))
        .await
        .unwrap();
    threads
        .set_workflow_state(&one, "debug", &json!({"step": 1}))
        .await
        .unwrap();
    threads
        .set_workflow_state(&one, "precommit", &json!(["x"]))
        .await
        .unwrap();
    assert_eq!(
        threads.workflow_state(&one, "debug").unwrap(),
        Some(json!({"step": 1}))
    );
    assert_eq!(
        threads.workflow_state(&one, "precommit").unwrap(),
        Some(json!(["x"]))
    );
    assert_eq!(threads.workflow_state(&two, "debug").unwrap(), None);
    threads.clear_workflow_state(&one, "debug").await.unwrap();
    assert_eq!(threads.workflow_state(&one, "debug").unwrap(), None);
    let unknown = ThreadId::new();
    assert!(matches!(
        threads
            .set_workflow_state(&unknown, "debug", &json!(1))
            .await,
        Err(ThreadError::NotFound { .. })
    ));
}

#[tokio::test]
async fn corrupt_values_are_skipped_with_a_warning() {
    let (_dir, store, _clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    let good = threads
        .create(new_thread("chat", "/x", "good"))
        .await
        .unwrap();
    threads
        .append(&good, NewTurn::user("chat", "one"))
        .await
        .unwrap();
    threads
        .append(&good, NewTurn::user("chat", "two"))
        .await
        .unwrap();
    let bad = threads
        .create(new_thread("chat", "/x", "bad"))
        .await
        .unwrap();

    let raw = store.store();
    let mut turn_key = good.as_bytes().to_vec();
    turn_key.extend_from_slice(&0_u32.to_be_bytes());
    raw.raw_insert(trees::TURNS, &turn_key, b"{not json").await;
    raw.raw_insert(trees::THREADS, bad.as_bytes(), b"\xff\xfe")
        .await;
    raw.raw_insert(trees::THREADS_BY_UPDATED, &u64::MAX.to_be_bytes(), &[])
        .await;
    // Written behind Threads' back: its cache must not answer for them.
    threads.forget_cached();

    let (thread, logs) = capture_warnings(|| threads.get(&good).unwrap());
    assert_eq!(thread.turns.len(), 1);
    assert_eq!(thread.turns[0].text, "two");
    assert!(
        logs.contains("skipping a corrupt entry in the store"),
        "{logs}"
    );
    assert!(
        logs.contains("tree=\"turns\"") || logs.contains("tree=turns"),
        "{logs}"
    );

    let (listed, logs) = capture_warnings(|| threads.list(&ThreadFilter::default()).unwrap());
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [good]);
    assert!(logs.contains("threads_by_updated"), "{logs}");
    assert!(logs.contains("threads"), "{logs}");

    let (result, _) = capture_warnings(|| threads.get(&bad));
    assert!(matches!(result, Err(ThreadError::NotFound { .. })));
    // Appending to the damaged thread still works.
    threads
        .append(&good, NewTurn::user("chat", "three"))
        .await
        .unwrap();
}

fn thread_with(turns: Vec<NewTurn>) -> Thread {
    let id = ThreadId::new();
    let time = crate::time::Timestamp::from_millis(0);
    Thread {
        summary: ThreadSummary {
            id,
            title: "Title".into(),
            created: time,
            updated: time,
            expires: time,
            session_id: "s".into(),
            client: "c".into(),
            cwd: None,
            parent: None,
            tools: vec!["chat".into()],
            models: vec![],
            turn_count: turns.len() as u32,
        },
        turns: turns
            .into_iter()
            .map(|t| Turn {
                tokens: estimate_tokens(&t.text),
                role: t.role,
                text: t.text,
                tool: t.tool,
                model: t.model,
                provider: t.provider,
                files: t.files,
                images: t.images,
                time,
            })
            .collect(),
    }
}

#[test]
fn history_fits_the_budget_newest_first_and_says_what_it_left_out() {
    let thread = thread_with(
        (1..=10)
            .map(|i| {
                NewTurn::user("chat", format!("turn number {i} {}", "x".repeat(400)))
                    .with_files([format!("f{}.rs", i % 3), "shared.rs".to_owned()])
            })
            .collect(),
    );
    let everything = history::build(&thread, 1_000_000, estimate_tokens);
    assert_eq!(everything.included_turns, 10);
    assert_eq!(everything.omitted_turns, 0);
    assert!(!everything.text.contains("left out"));
    assert_eq!(everything.text.matches(HISTORY_START).count(), 1);
    assert_eq!(everything.text.matches(HISTORY_END).count(), 1);
    assert_eq!(everything.text.matches("turn number").count(), 10);
    assert_eq!(
        everything.files_newest_first,
        ["f1.rs", "shared.rs", "f0.rs", "f2.rs"]
    );
    assert!(everything.text.find("turn number 1 ") < everything.text.find("turn number 10 "));

    let budget = 450;
    let some = history::build(&thread, budget, estimate_tokens);
    assert!(some.tokens <= budget, "{} > {budget}", some.tokens);
    assert!(
        some.included_turns >= 2 && some.included_turns < 10,
        "{some:?}"
    );
    assert_eq!(some.included_turns + some.omitted_turns, 10);
    assert!(some.text.contains(&format!(
        "Turns 1–{} were left out to fit the context window",
        some.omitted_turns
    )));
    assert!(some.text.contains("turn number 10 "));
    assert!(
        !some
            .text
            .contains(&format!("turn number {} ", some.omitted_turns))
    );
    // Files of omitted turns are still listed, once.
    assert_eq!(some.files_newest_first, everything.files_newest_first);

    let nothing = history::build(&thread, 5, estimate_tokens);
    assert_eq!(nothing.text, "");
    assert_eq!(nothing.omitted_turns, 10);

    let empty = history::build(&thread_with(vec![]), 1000, estimate_tokens);
    assert_eq!(empty, history::History::default());
}

/// A thread that grows past its budget is cut in steps of half the budget: the cut stays put
/// for several turns (their history starts the same), and every history fits.
#[test]
fn history_is_cut_in_large_steps_that_stay_put_while_the_thread_grows() {
    let budget = 2_000;
    let mut turns = Vec::new();
    let mut cuts = Vec::new();
    let mut previous: Option<history::History> = None;
    for i in 1..=60 {
        turns.push(NewTurn::user(
            "chat",
            format!("turn {i} {}", "y".repeat(300)),
        ));
        let history = history::build(&thread_with(turns.clone()), budget, estimate_tokens);
        assert!(history.tokens <= budget, "{} > {budget}", history.tokens);
        assert!(
            history.text.contains(&format!("turn {i} ")),
            "the newest turn is in"
        );
        assert_eq!(
            history.blocks.concat().len() + HISTORY_END.len() + 2,
            history.text.len()
        );
        if let Some(previous) = &previous
            && previous.omitted_turns == history.omitted_turns
        {
            // Same cut: the earlier turns come again unchanged, the new one after them
            // (block 0 is the header, whose thread id `thread_with` makes anew).
            assert_eq!(
                history.blocks[1..previous.blocks.len()],
                previous.blocks[1..]
            );
        }
        cuts.push(history.omitted_turns);
        previous = Some(history);
    }
    let moves = cuts.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(moves >= 3, "{cuts:?}");
    assert!(moves * 4 <= cuts.len(), "the cut moves rarely: {cuts:?}");
    assert!(cuts.windows(2).all(|w| w[0] <= w[1]), "{cuts:?}");
}

#[test]
fn history_names_roles_models_and_files_once() {
    let thread = thread_with(vec![
        NewTurn::user("chat", "Look at this").with_files(["a.rs"]),
        NewTurn::assistant("chat", "gpt-5", "openai", "Looked."),
    ]);
    let history = history::build(&thread, 10_000, |text: &str| text.len() as u64 / 3);
    assert!(
        history
            .text
            .contains("--- Turn 1: user, via chat ---\nFiles: a.rs\nLook at this\n")
    );
    assert!(
        history
            .text
            .contains("--- Turn 2: assistant gpt-5 (openai), via chat ---\nLooked.\n")
    );
    assert!(history.text.contains("provided once, separately"));
    assert!(
        !history.text.contains("so far"),
        "no turn count: it changes every turn"
    );
    assert_eq!(history.files_newest_first, ["a.rs"]);
    assert_eq!(history.files_first_seen, ["a.rs"]);
}

/// Every shape of a turn's header line, exactly (the prompt format models see).
#[test]
fn history_turn_blocks_exactly() {
    let mut turns: Vec<NewTurn> = (0..9)
        .map(|i| NewTurn::user("chat", format!("t{i}")))
        .collect();
    let mut no_provider = NewTurn::assistant("codereview", "o3", "x", "Fine.  \n\n");
    no_provider.provider = None;
    let mut no_model = NewTurn::assistant("debug", "m", "p", "Hm.");
    no_model.model = None;
    no_model.provider = None;
    turns.extend([
        NewTurn::user("chat", "See these\t")
            .with_files(["a.rs", "b/c.rs"])
            .with_images(["shot.png", "x.jpg"]),
        no_provider,
        no_model,
    ]);
    let history = history::build(&thread_with(turns), 100_000, estimate_tokens);
    for expected in [
        "\n--- Turn 9: user, via chat ---\nt8\n",
        "\n--- Turn 10: user, via chat ---\nFiles: a.rs, b/c.rs\nImages: shot.png, x.jpg\nSee these\n",
        "\n--- Turn 11: assistant o3, via codereview ---\nFine.\n",
        "\n--- Turn 12: assistant, via debug ---\nHm.\n",
    ] {
        assert!(
            history.text.contains(expected),
            "{expected:?} in {}",
            history.text
        );
    }
}

#[test]
fn token_budgets_follow_zen() {
    assert_eq!(token_budget_for(200_000), (120_000, 80_000));
    assert_eq!(token_budget_for(299_999), (179_999, 120_000));
    assert_eq!(token_budget_for(1_000_000), (800_000, 200_000));
    assert_eq!(estimate_tokens("abcdefgh"), 2);
    assert_eq!(estimate_tokens("abcdefghi"), 3);
}

#[tokio::test]
async fn a_thread_renders_as_text() {
    let (_dir, store, _clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    let parent = ThreadId::new();
    let id = threads
        .create(NewThread {
            parent: Some(parent),
            ..new_thread("chat", "/x", "Hi")
        })
        .await
        .unwrap();
    threads
        .append(&id, NewTurn::user("chat", "Hi").with_files(["a.rs"]))
        .await
        .unwrap();
    let text = render::render_thread(&threads.get(&id).unwrap());
    assert!(text.starts_with(&format!("Thread {id}: Hi\nStarted 2025-03-10 12:00 UTC by chat (claude-code, session session-1) in /x")), "{text}");
    assert!(text.contains(&format!("Continues thread {parent}.")));
    assert!(
        text.contains("## 1 · user · chat · 2025-03-10 12:00 UTC\nFiles: a.rs\nHi\n"),
        "{text}"
    );
}

#[test]
fn zen_variables_override_thread_limits() {
    let mut config = MemoryConfig::default();
    config.apply_zen_env(|name| match name {
        "CONVERSATION_TIMEOUT_HOURS" => Some("6".into()),
        "MAX_CONVERSATION_TURNS" => Some("zero".into()),
        _ => None,
    });
    assert_eq!(config.ttl_hours, 6);
    assert_eq!(config.max_turns, 50);
}

#[tokio::test]
async fn the_cached_thread_is_what_the_store_holds() {
    let (dir, store, clock) = open_store(LimitsConfig::default());
    let threads = store.threads();
    // Cached at creation, kept in step by appends and exchanges.
    let (id, _) = threads
        .write_turns(
            ThreadTarget::New(new_thread("chat", "/x", "first")),
            vec![
                NewTurn::user("chat", "first"),
                NewTurn::assistant("chat", "m1", "p", "one"),
            ],
        )
        .await
        .unwrap();
    threads.flush().await.unwrap();
    // A thread that is not cached yet: first read from the store, then cached.
    let other = threads
        .create(new_thread("debug", "/y", "other"))
        .await
        .unwrap();
    for i in 0..3 {
        clock.advance(Duration::from_secs(1));
        threads
            .write_turns(
                ThreadTarget::Existing(id),
                vec![
                    NewTurn::user("codereview", format!("q{i}")),
                    NewTurn::assistant("codereview", "m2", "p", format!("a{i}")),
                ],
            )
            .await
            .unwrap();
        threads
            .append(&other, NewTurn::user("debug", format!("o{i}")))
            .await
            .unwrap();
        // The read after each write sees it.
        assert_eq!(threads.get(&id).unwrap().turns.len(), 2 * (i + 2));
    }
    threads.flush().await.unwrap();
    let cached = threads.get(&id).unwrap();
    let cached_other = threads.get(&other).unwrap();
    assert_eq!(cached.summary.models, ["m1", "m2"]);
    assert_eq!(threads.summary(&id).unwrap(), cached.summary);
    drop(store);

    let (store, _clock) = reopen(&dir, LimitsConfig::default());
    assert_eq!(store.threads().get(&id).unwrap(), cached);
    assert_eq!(store.threads().get(&other).unwrap(), cached_other);
}
