//! The shim's stdio as clients really hand it over: socketpairs (Node/libuv
//! clients such as Claude Code), pipes, and a regular file (the fallback path).
//! Whatever it is, a session must work the same, the client's own file
//! descriptions must not be switched to non-blocking, and nothing the shim
//! starts may keep the client's stdio open after the shim exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::support::{WAIT, ZenHome, result_text, shim_bin};

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "zen-e2e-shim-io", "version": "1.0"}
    }})
}

fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

fn call_version(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "version", "arguments": {}}})
}

fn line(message: &Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Whether the open file description behind `fd` is non-blocking.
fn nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL failed");
    flags & libc::O_NONBLOCK != 0
}

/// A zen-shim whose stderr goes to a file in the home, shown when a test fails.
struct Shim {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Shim {
    fn spawn(home: &ZenHome, stdin: impl Into<Stdio>, stdout: impl Into<Stdio>) -> Self {
        let stderr = home.path().join("shim-stderr.txt");
        let child = home
            .command(&shim_bin())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_success(&mut self) {
        let status = crate::support::wait_within(&mut self.child, crate::support::WAIT, "zen-shim");
        assert!(
            status.success(),
            "zen-shim: {status}; stderr: {}",
            self.stderr()
        );
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shim's output, line by line, read on a thread so that a stuck shim
/// fails the test after [`WAIT`] instead of hanging it.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn new(from_shim: impl Read + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(from_shim).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line, parsed; `None` once the shim's output has ended.
    fn next(&self, shim: &Shim) -> Option<Value> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.0.recv_timeout(WAIT) {
            Ok(text) => Some(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("shim wrote a non-JSON line {text:?}: {e}")),
            ),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line from zen-shim; its stderr: {}", shim.stderr())
            }
        }
    }
}

fn assert_version_answer(answer: &Value, id: u64) {
    assert_eq!(answer["id"], id, "{answer}");
    let text = result_text(&answer["result"]);
    assert!(
        text.contains(&format!("zen-shim: {}", env!("CARGO_PKG_VERSION"))),
        "{answer}"
    );
}

#[test]
fn a_session_over_socketpairs_like_node_clients_give_works_to_the_end() {
    let home = ZenHome::new();
    // libuv gives a child one socketpair per stdio stream.
    let (mut to_shim, shim_in) = UnixStream::pair().unwrap();
    let (from_shim, shim_out) = UnixStream::pair().unwrap();
    // Copies of the shim's ends: the same open file descriptions the shim gets.
    let shim_in_seen = shim_in.try_clone().unwrap();
    let shim_out_seen = shim_out.try_clone().unwrap();
    assert!(!nonblocking(&shim_in_seen) && !nonblocking(&shim_out_seen));
    let mut shim = Shim::spawn(&home, OwnedFd::from(shim_in), OwnedFd::from(shim_out));
    let from_shim = Lines::new(from_shim);

    to_shim.write_all(&line(&initialize(1))).unwrap();
    let answer = from_shim.next(&shim).expect("an initialize answer");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "zen", "{answer}");
    to_shim.write_all(&line(&initialized())).unwrap();
    to_shim.write_all(&line(&call_version(2))).unwrap();
    let answer = from_shim.next(&shim).expect("a tools/call answer");
    assert_version_answer(&answer, 2);

    assert!(
        !nonblocking(&shim_in_seen) && !nonblocking(&shim_out_seen),
        "the shim switched the client's socket descriptions to non-blocking"
    );
    // Only the shim may hold its ends now, so that its exit ends our reads.
    drop((shim_in_seen, shim_out_seen));

    // A last request without a newline, then end of input (a half-close, as
    // libuv does on `stdin.end()`): it is still answered, then the shim exits.
    to_shim
        .write_all(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
        .unwrap();
    to_shim.shutdown(Shutdown::Write).unwrap();
    let answer = from_shim.next(&shim).expect("the ping answer");
    assert_eq!(answer["id"], 3, "{answer}");
    assert!(answer.get("result").is_some(), "{answer}");
    // End of stream: neither the shim nor the zend it started holds our socket.
    assert_eq!(from_shim.next(&shim), None);
    shim.wait_success();
}

#[test]
fn a_session_whose_stdin_is_a_regular_file_is_answered_in_full() {
    let home = ZenHome::new();
    let requests = home.path().join("requests.jsonl");
    let mut script = Vec::new();
    script.extend(line(&initialize(1)));
    script.extend(line(&initialized()));
    script.extend(line(&call_version(2)));
    script.extend(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#);
    std::fs::write(&requests, script).unwrap();

    let (from_shim, shim_out) = std::io::pipe().unwrap();
    let shim_out_seen = shim_out.try_clone().unwrap();
    let mut shim = Shim::spawn(&home, std::fs::File::open(&requests).unwrap(), shim_out);
    let from_shim = Lines::new(from_shim);

    let answer = from_shim.next(&shim).expect("an initialize answer");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "zen", "{answer}");
    // zend may answer the two in either order.
    let mut answers: Vec<Value> = (0..2)
        .map(|_| from_shim.next(&shim).expect("an answer"))
        .collect();
    answers.sort_by_key(|a| a["id"].as_u64());
    assert_version_answer(&answers[0], 2);
    assert_eq!(answers[1]["id"], 3, "{}", answers[1]);
    assert!(answers[1].get("result").is_some(), "{}", answers[1]);
    assert!(
        !nonblocking(&shim_out_seen),
        "the shim switched the client's pipe description to non-blocking"
    );
    drop(shim_out_seen);
    assert_eq!(from_shim.next(&shim), None, "nothing after the last answer");
    shim.wait_success();
}
