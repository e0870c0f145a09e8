//! Stopping zend (`zend stop`, SIGTERM) while a model call is held at the mock:
//! released before the deadline, the call is answered and its turns are on disk
//! for the next zend; held past it, the client is told clearly, the upstream is
//! aborted, no turn is half-written and the ledger holds what was spent.

use std::path::Path;
use std::process::Output;
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{
    COMMAND_DEADLINE, McpClient, WAIT, ZenHome, continuation_id, estimated_input_tokens, ok_text,
    output_within, pid_from_version, result_text, wait_until, zend_bin,
};

#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `zend stop --deadline N`.
    Command,
    /// SIGTERM; the deadline is `server.yaml`'s `shutdown_deadline_secs`.
    Sigterm,
}

/// Whether zend's log has a line containing `needle`.
fn logged(home: &Path, needle: &str) -> bool {
    std::fs::read_dir(home.join("state"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|log| log.contains(needle)))
}

/// A home whose zend gives calls `deadline_secs` to finish when stopped.
fn home_with(mock: &MockProvider, deadline_secs: u64) -> ZenHome {
    let home = ZenHome::with_mock(mock);
    home.write_config(
        "server.yaml",
        &format!("shutdown_deadline_secs: {deadline_secs}\n"),
    );
    home
}

/// Stops the daemon `pid` of `home` as `how` says, with `deadline_secs` for live
/// calls, and returns once zend has begun to shut down (with the `zend stop`
/// process, which runs until the daemon is gone).
fn begin_stop(
    home: &ZenHome,
    how: Stop,
    pid: u32,
    deadline_secs: u64,
) -> Option<JoinHandle<Output>> {
    let stopper = match how {
        Stop::Command => {
            let mut command = home.command(&zend_bin());
            command.args(["stop", "--deadline", &deadline_secs.to_string()]);
            Some(std::thread::spawn(move || {
                output_within(&mut command, COMMAND_DEADLINE)
            }))
        }
        Stop::Sigterm => {
            assert!(crate::support::signal(pid, "TERM"));
            None
        }
    };
    let needle = match how {
        Stop::Command => "shutdown requested",
        Stop::Sigterm => "SIGTERM: shutting down",
    };
    wait_until("zend to begin shutting down", || {
        logged(home.path(), needle)
    });
    stopper
}

fn version_pid(client: &mut McpClient) -> u32 {
    pid_from_version(&ok_text(&client.call_tool("version", json!({}))))
}

/// A chat call held at the mock when zend began to stop.
struct HeldAtStop {
    mock: MockProvider,
    home: ZenHome,
    client: McpClient,
    pid: u32,
    /// The call's request id.
    id: u64,
    stopper: Option<JoinHandle<Output>>,
}

impl HeldAtStop {
    /// Sends `prompt` (answered with `reply` once released), holds it at the mock
    /// and stops zend as `how` says, with `deadline_secs` for live calls.
    fn start(how: Stop, deadline_secs: u64, prompt: &str, reply: &str) -> Self {
        let mock = MockProvider::start();
        mock.set(Behaviour {
            reply: reply.into(),
            ..Behaviour::default()
        });
        let home = home_with(&mock, deadline_secs);
        let mut client = home.session();
        let pid = version_pid(&mut client);
        mock.hold();
        let id = client.send_tool_call("chat", json!({"prompt": prompt, "model": "gpt-5"}));
        assert!(
            mock.wait_in_flight(1, WAIT),
            "the call never reached the mock"
        );
        let stopper = begin_stop(&home, how, pid, deadline_secs);
        Self {
            mock,
            home,
            client,
            pid,
            id,
            stopper,
        }
    }

    /// The shim ends as a stopped zend makes it (exit 1, saying so on stderr),
    /// `zend stop` succeeds and the daemon is gone.
    fn ends(&mut self) {
        assert!(!self.client.wait().success());
        let stderr = self.client.stderr();
        assert!(stderr.contains("stopped"), "{stderr}");
        if let Some(stopper) = self.stopper.take() {
            let out = stopper.join().unwrap();
            assert!(out.status.success(), "zend stop: {out:?}");
        }
        assert!(
            self.home.wait_no_daemon_pid(self.pid, WAIT),
            "zend is still running"
        );
    }
}

fn finishes_within_the_deadline(how: Stop) {
    let mut held = HeldAtStop::start(how, 120, "MARKER-IN-FLIGHT", "DURABLE-ANSWER");
    held.mock.release();
    let response = held.client.response_to(held.id);
    let text = result_text(&response["result"]);
    assert_eq!(response["result"]["isError"], false, "{how:?}: {response}");
    assert!(text.contains("DURABLE-ANSWER"), "{text}");
    let thread = continuation_id(&text);
    held.ends();
    assert!(held.mock.hangups().is_empty(), "{:?}", held.mock.hangups());

    // The next zend has both turns.
    let mut next = held.home.session();
    assert_ne!(version_pid(&mut next), held.pid);
    let shown = next.call_tool("threads", json!({"continuation_id": thread}));
    let shown = ok_text(&shown);
    assert!(
        shown.contains("MARKER-IN-FLIGHT") && shown.contains("DURABLE-ANSWER"),
        "{shown}"
    );
    assert!(next.close().success());
}

fn cut_at_the_deadline(how: Stop) {
    let mut held = HeldAtStop::start(how, 1, "MARKER-CUT-OFF", "never sent");
    // Never released: the deadline passes, and the client is told why.
    let response = held.client.response_to(held.id);
    let text = result_text(&response["result"]);
    assert_eq!(response["result"]["isError"], true, "{how:?}: {response}");
    assert!(
        text.contains("stopped") && text.contains("deadline") && text.contains("retry"),
        "{text}"
    );
    held.ends();
    // zend hung up on the provider (the mock still held the request; it notices
    // the closed connection on its own time).
    wait_until("the mock to see zend hang up", || {
        !held.mock.hangups().is_empty()
    });
    assert_eq!(held.mock.hangups(), ["gpt-5"]);
    held.mock.release();

    // The next zend: no thread holds the prompt; the ledger has the aborted call,
    // priced at zend's estimate of what it sent, as a cancellation.
    let mut next = held.home.session();
    let found = ok_text(&next.call_tool("threads", json!({"query": "MARKER-CUT-OFF"})));
    assert!(!found.contains("MARKER-CUT-OFF"), "{found}");
    let status: Value = held.home.status_json();
    let row = &status["ledger"]["all_time"]["by_model"]["gpt-5"];
    let sent = estimated_input_tokens(&held.mock.completions()[0].body);
    assert_eq!(row["calls"], 1, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    assert_eq!(row["input_tokens"], sent, "{row}");
    assert_eq!(
        status["ledger"]["all_time"]["total"]["calls"], 1,
        "{status}"
    );
    assert!(next.close().success());
}

#[test]
fn zend_stop_lets_a_call_in_flight_finish_and_keeps_its_turns() {
    finishes_within_the_deadline(Stop::Command);
}

#[test]
fn sigterm_lets_a_call_in_flight_finish_and_keeps_its_turns() {
    finishes_within_the_deadline(Stop::Sigterm);
}

#[test]
fn zend_stop_past_the_deadline_tells_the_client_and_writes_no_turn() {
    cut_at_the_deadline(Stop::Command);
}

#[test]
fn sigterm_past_the_deadline_tells_the_client_and_writes_no_turn() {
    cut_at_the_deadline(Stop::Sigterm);
}
