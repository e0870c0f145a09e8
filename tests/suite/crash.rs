//! `kill -9` under load: sessions keep calling `chat` while zend is killed at
//! random moments; afterwards every turn a client was answered for is in its
//! thread, and `zend status` totals equal the sum of the ledger records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{WAIT, ZenHome, kill9, result_text};

const SESSIONS: usize = 8;
const KILLS: usize = 4;

/// The continuation_id in a model tool's answer.
fn continuation_id(text: &str) -> Option<String> {
    let start = text.find("continuation_id: ")? + "continuation_id: ".len();
    text[start..].split_whitespace().next().map(str::to_owned)
}

/// `zend status --json`, waiting for a zend to answer it.
fn status_json(home: &ZenHome) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let output = home.zend(&["status", "--json"]);
        if let Ok(status) = serde_json::from_slice::<Value>(&output.stdout)
            && status["ledger"].is_object()
        {
            return status;
        }
        assert!(Instant::now() < until, "zend status never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn answered_turns_and_exact_totals_survive_kill9_under_load() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        delay: Duration::from_millis(5),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    // The first session starts zend.
    let clients: Vec<_> = (0..SESSIONS).map(|_| home.session()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // (thread id, prompt) of every answered call.
    let answered = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let workers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(session, mut client)| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut thread: Option<String> = None;
                let mut calls = 0;
                while !stop.load(Ordering::SeqCst) || calls < 2 {
                    let prompt = format!("session {session} call {calls}");
                    let mut arguments = json!({"prompt": prompt});
                    if let Some(id) = &thread {
                        arguments["continuation_id"] = json!(id);
                    }
                    let response = client.request(
                        "tools/call",
                        json!({"name": "chat", "arguments": arguments}),
                    );
                    calls += 1;
                    let result = &response["result"];
                    if result["isError"] != false {
                        // Killed under the call (a retryable error): not
                        // answered, so nothing to find later.
                        continue;
                    }
                    let id = continuation_id(&result_text(result))
                        .unwrap_or_else(|| panic!("no continuation_id: {response}"));
                    answered.lock().unwrap().push((id.clone(), prompt));
                    // A new thread now and then, before one fills up.
                    thread = (calls % 8 != 0).then_some(id);
                }
                assert!(client.close().success());
                calls
            })
        })
        .collect();

    let mut rng = fastrand::Rng::with_seed(9);
    let mut killed = Vec::new();
    for _ in 0..KILLS {
        // A zend every session is back on (killing one that is still
        // starting makes the shim that started it give up, by design).
        let until = Instant::now() + WAIT;
        let pid = loop {
            let status = status_json(&home);
            if let Some(pid) = status["pid"].as_u64().map(|p| p as u32)
                && !killed.contains(&pid)
                && status["sessions"]
                    .as_array()
                    .is_some_and(|s| s.len() == SESSIONS)
            {
                break pid;
            }
            assert!(
                Instant::now() < until,
                "the sessions never came back: {status}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(rng.u64(50..300)));
        kill9(pid);
        killed.push(pid);
    }
    stop.store(true, Ordering::SeqCst);
    let calls: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= SESSIONS * 2,
        "{} of {calls} calls answered",
        answered.len()
    );

    let status = status_json(&home);
    let total = status["ledger"]["all_time"]["total"].clone();
    home.stop_daemon();

    // The store as zend left it, read through zend's library.
    let data = zend::data::Data::open(&home.path().join("data"), &Default::default()).unwrap();
    for (id, prompt) in &answered {
        let thread = data
            .threads()
            .get(&id.parse().unwrap())
            .unwrap_or_else(|e| panic!("answered thread {id} is gone: {e}"));
        assert!(
            thread.turns.iter().any(|t| &t.text == prompt),
            "answered turn {prompt:?} is missing from {id}"
        );
    }
    let records = data
        .ledger()
        .records_since(zend::time::Timestamp::EPOCH, usize::MAX)
        .unwrap();
    let input: u64 = records.iter().map(|r| r.input_tokens).sum();
    let output: u64 = records.iter().map(|r| r.output_tokens).sum();
    let cost: f64 = records.iter().filter_map(|r| r.cost_usd).sum();
    assert!(records.len() >= answered.len(), "{} records", records.len());
    assert_eq!(total["calls"], records.len(), "{total}");
    assert_eq!(total["input_tokens"], input, "{total}");
    assert_eq!(total["output_tokens"], output, "{total}");
    assert!(
        (total["cost_usd"].as_f64().unwrap_or(-1.0) - cost).abs() < 1e-9,
        "{total} against ${cost}"
    );
}
