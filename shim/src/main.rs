//! zen-shim: what an MCP client launches. It frames bytes and nothing else.
//!
//! Each newline-terminated line on stdin becomes one `Frame` on a `Zend.Session`
//! stream; each frame from the daemon becomes one line on stdout. Validation,
//! errors and all MCP logic live in zend (invariant 1). If no daemon answers,
//! the shim starts `zend serve` detached and waits for its socket (see
//! `zen_proto::client`).
//!
//! If zend crashes, is killed, or restarts for a newer shim, the shim hides it:
//! requests left unanswered get a JSON-RPC error saying they may be retried,
//! the shim reconnects (starting zend again when allowed), replays the client's
//! `initialize` and `notifications/initialized`, drops the duplicate answer, and
//! carries on. That is the only reason it looks inside lines at all, and all it
//! looks at is the top-level `id` and `method` (see `zen_shim::scan` and
//! `zen_shim::replay`). A daemon stopped on purpose (`zend stop`, SIGTERM) is
//! not resurrected: the shim says so on stderr and exits.
//!
//! Stdout belongs to the protocol: diagnostics go to stderr, and only when
//! something goes wrong or `ZEN_SHIM_DEBUG` is set.
//!
//! Exit codes: 0 when stdin ended and the daemon finished answering; 1 when the
//! daemon could not be reached, was stopped, or kept going away.

mod multicall;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::io::{Read, Stdout, Write};

use tokio::sync::{mpsc, oneshot};
use tonic::Streaming;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use zen_proto::client::{self as connect, Launcher};
use zen_proto::v1::Frame;
use zen_shim::framing::{Line, LineFramer, TooLong};
use zen_shim::replay::Book;

/// Lines buffered from stdin while the daemon is busy (or being reconnected).
/// Small: a client waits for answers anyway, and backpressure on stdin is the
/// right signal.
const OUTBOUND_CAPACITY: usize = 32;
/// Path of the `zend` binary to start, when it is neither beside the shim nor on PATH.
const ZEND_BIN_ENV: &str = "ZEN_ZEND_BIN";
/// Test hook: the version this shim reports to zend instead of its own.
const VERSION_OVERRIDE_ENV: &str = "ZEN_SHIM_VERSION_OVERRIDE";
/// Set (to anything) to log reconnects on stderr.
const DEBUG_ENV: &str = "ZEN_SHIM_DEBUG";
/// Reconnects allowed within [`RESTART_WINDOW`] before the shim gives up, so a
/// daemon that dies at every start is reported rather than restarted forever.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long the daemon may take to accept a session once connected.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    if let Some(code) = multicall::run_as_zend() {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zen-shim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run());
    // The stdin thread may sit in a blocking read that nothing can interrupt;
    // the process exits without waiting for it.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("zen-shim: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// How one connection's session ended.
enum End {
    /// zend ended the stream after stdin ended: all answered.
    Finished,
    /// The client closed our stdout: nobody is listening any more.
    StdoutClosed,
    /// zend ended it on purpose; the reason is for the user.
    Stopped(String),
    /// The connection broke, or zend is restarting: reconnect.
    Lost(String),
}

async fn run() -> Result<(), String> {
    let socket = zen_proto::paths::Socket::from_env();
    let book = Arc::new(Mutex::new(Book::default()));
    let (lines_tx, mut lines) = mpsc::channel::<Vec<u8>>(OUTBOUND_CAPACITY);
    spawn_stdin_reader(lines_tx).map_err(|e| format!("cannot start the stdin reader: {e}"))?;
    let mut stdout = std::io::stdout();
    let mut restarts = VecDeque::new();
    let mut mode = connect::Mode::First;
    let mut early = Vec::new();
    loop {
        let replay = lock(&book).replay();
        let (outbound, mut inbound) =
            open_session(&socket, mode, replay, &mut early, &mut lines, &book).await?;
        let (stop, stopped) = oneshot::channel();
        let forwarder = tokio::spawn(forward(lines, outbound, Arc::clone(&book), stopped));
        // The relay runs as a task, not in `block_on`'s own future: a reply wakes a task
        // straight onto the run queue, where waking the `block_on` future makes the
        // current-thread scheduler poll the reactor once (an `epoll_wait` with no timeout)
        // before it writes the reply out.
        let relaying = {
            let book = Arc::clone(&book);
            tokio::spawn(async move {
                let end = relay(&mut inbound, &book, &mut stdout).await;
                (end, stdout)
            })
        };
        let (end, out) = relaying
            .await
            .map_err(|e| format!("internal error in the stdout relay: {e}"))?;
        stdout = out;
        let _ = stop.send(());
        let forwarded = forwarder
            .await
            .map_err(|e| format!("internal error in the stdin forwarder: {e}"))?;
        lines = forwarded.lines;
        early.extend(forwarded.unsent.map(tonic::codegen::Bytes::from));
        let stdin_open = forwarded.stdin_open;
        let reason = match end {
            End::Finished | End::StdoutClosed => return Ok(()),
            End::Stopped(reason) => return Err(reason),
            End::Lost(reason) => reason,
        };
        let errors = lock(&book).lost();
        for error in &errors {
            if write_line(&mut stdout, error).await.is_err() {
                return Ok(());
            }
        }
        if !stdin_open {
            return match errors.len() {
                0 => Ok(()),
                n => Err(format!(
                    "lost the connection to zend ({reason}) with {n} request(s) unanswered after stdin ended"
                )),
            };
        }
        let now = Instant::now();
        while restarts
            .front()
            .is_some_and(|at: &Instant| now.duration_since(*at) > RESTART_WINDOW)
        {
            restarts.pop_front();
        }
        if restarts.len() >= MAX_RESTARTS {
            return Err(format!(
                "lost the connection to zend {MAX_RESTARTS} times within {}s (last: {reason}); \
                 giving up: see zend's log (`zend status` names it)",
                RESTART_WINDOW.as_secs()
            ));
        }
        restarts.push_back(now);
        if std::env::var_os(DEBUG_ENV).is_some() {
            eprintln!(
                "zen-shim: lost zend ({reason}); {} request(s) errored; reconnecting",
                errors.len()
            );
        }
        mode = connect::Mode::Reconnect;
    }
}

/// Connects (or starts zend) and opens a session whose first frames are
/// `replay`, then `early`, then the lines already queued from stdin. A daemon
/// that is on its way out refuses sessions as unavailable, drops the
/// connection or never answers; all are retried until the mode's deadline.
///
/// Lines the client has written already go out with the request rather than
/// after zend's answer to it: at start that is `initialize`, one round trip
/// sooner. They are noted as sent (see [`forward`]) only once the session is
/// open; until then they stay in `early`, and a refused session leaves them
/// for the next attempt, as a refused line always was.
async fn open_session(
    socket: &zen_proto::paths::Socket,
    mut mode: connect::Mode,
    replay: Vec<Vec<u8>>,
    early: &mut Vec<tonic::codegen::Bytes>,
    lines: &mut mpsc::Receiver<Vec<u8>>,
    book: &Mutex<Book>,
) -> Result<(mpsc::Sender<Frame>, Streaming<Frame>), String> {
    let started = Instant::now();
    loop {
        let launcher = connect::autostart_allowed().then_some(launcher);
        let stream = connect::connect_or_start(socket, mode, launcher).await?;
        // zend refuses a session only while shutting down; any failure here
        // is a daemon on its way out or gone, so try again (starting a new one).
        let reason = match open_on(stream, &replay, early, lines, book).await {
            Ok(session) => return Ok(session),
            Err(reason) => reason,
        };
        if started.elapsed() > mode.deadline() {
            return Err(format!(
                "zend at {} would not open a session: {reason}",
                socket.path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        mode = connect::Mode::Reconnect;
    }
}

/// One attempt of [`open_session`] on a connected socket; `Err` says why it failed.
async fn open_on(
    stream: tokio::net::UnixStream,
    replay: &[Vec<u8>],
    early: &mut Vec<tonic::codegen::Bytes>,
    lines: &mut mpsc::Receiver<Vec<u8>>,
    book: &Mutex<Book>,
) -> Result<(mpsc::Sender<Frame>, Streaming<Frame>), String> {
    // Let the stdin reader queue what the client has written already (at
    // start, its `initialize`), so that it goes out with the request.
    tokio::task::yield_now().await;
    let mut client = connect::handshake(stream).await?;
    while early.len() < OUTBOUND_CAPACITY {
        match lines.try_recv() {
            Ok(line) => early.push(line.into()),
            Err(_) => break,
        }
    }
    let (outbound, outbound_rx) =
        mpsc::channel::<Frame>(OUTBOUND_CAPACITY + replay.len() + early.len());
    for line in replay {
        let _ = outbound.try_send(Frame {
            json: line.clone().into(),
        });
    }
    for line in early.iter() {
        let _ = outbound.try_send(Frame { json: line.clone() });
    }
    let mut request = tonic::Request::new(ReceiverStream::new(outbound_rx));
    add_session_metadata(request.metadata_mut());
    match tokio::time::timeout(OPEN_TIMEOUT, client.session(request)).await {
        Ok(Ok(response)) => {
            note_missing_keys(response.metadata());
            let mut book = lock(book);
            for line in early.drain(..) {
                book.sent(&line);
            }
            Ok((outbound, response.into_inner()))
        }
        Ok(Err(status)) => Err(status.message().to_owned()),
        Err(_) => Err(format!("no answer within {}s", OPEN_TIMEOUT.as_secs())),
    }
}

/// Copies zend's frames to stdout until the stream ends.
async fn relay(inbound: &mut Streaming<Frame>, book: &Mutex<Book>, stdout: &mut Stdout) -> End {
    loop {
        match inbound.message().await {
            Ok(Some(frame)) => {
                if !lock(book).received(&frame.json) {
                    continue;
                }
                if write_line(stdout, &frame.json).await.is_err() {
                    return End::StdoutClosed;
                }
            }
            Ok(None) => return End::Finished,
            Err(status) => return classify(&status),
        }
    }
}

/// Whether a stream that ended with `status` was ended on purpose.
fn classify(status: &tonic::Status) -> End {
    use zen_proto::meta::{END, end};
    let message = status.message().to_owned();
    match status.metadata().get(END).and_then(|v| v.to_str().ok()) {
        Some(end::STOPPED) => End::Stopped(message),
        Some(end::REFUSED) => End::Stopped(format!("zend refused the session: {message}")),
        Some(_) => End::Lost(message),
        // An older zend says it in words only.
        None if status.code() == tonic::Code::Unavailable && message.contains("stopped") => {
            End::Stopped(message)
        }
        None if status.code() == tonic::Code::InvalidArgument => {
            End::Stopped(format!("zend refused the session: {message}"))
        }
        None => End::Lost(message),
    }
}

/// What a forwarder hands back when its connection is done.
struct Forwarded {
    /// The stdin line queue, for the next connection.
    lines: mpsc::Receiver<Vec<u8>>,
    /// A line the connection refused because it was already gone: the next
    /// connection sends it first.
    unsent: Option<Vec<u8>>,
    stdin_open: bool,
}

/// Sends stdin's lines to one connection until told to stop (the connection
/// is gone) or stdin ends. Dropping `outbound` at EOF
/// half-closes the stream, and the daemon ends it once every reply is written.
///
/// A line is noted as sent as the connection takes it, so a line a dead
/// connection took is errored by [`Book::lost`], and one it refused goes to
/// the next daemon (see [`open_session`]): never both.
async fn forward(
    mut lines: mpsc::Receiver<Vec<u8>>,
    outbound: mpsc::Sender<Frame>,
    book: Arc<Mutex<Book>>,
    mut stop: oneshot::Receiver<()>,
) -> Forwarded {
    loop {
        let line = tokio::select! {
            biased;
            _ = &mut stop => return Forwarded { lines, unsent: None, stdin_open: true },
            line = lines.recv() => line,
        };
        let Some(line) = line else {
            return Forwarded {
                lines,
                unsent: None,
                stdin_open: false,
            };
        };
        // `Err(true)`: told to stop; `Err(false)`: the connection is gone, and
        // `relay` will notice and tell us (a oneshot must not be awaited twice).
        let permit = tokio::select! {
            biased;
            _ = &mut stop => Err(true),
            permit = outbound.reserve() => permit.map_err(|_| false),
        };
        let permit = match permit {
            Ok(permit) => permit,
            Err(stopped) => {
                if !stopped {
                    let _ = (&mut stop).await;
                }
                return Forwarded {
                    lines,
                    unsent: Some(line),
                    stdin_open: true,
                };
            }
        };
        lock(&book).sent(&line);
        permit.send(Frame { json: line.into() });
    }
}

/// The first stdin read buffer, and the most it grows to.
const CHUNK_START: usize = 4 * 1024;
const CHUNK_MAX: usize = 64 * 1024;

/// Reads stdin on a thread of its own, blocking, and queues one entry per line (see
/// `zen_shim::framing`). One thread woken per message: tokio's `stdin()` hands every read to
/// its blocking pool instead, which cost the shim about twice the CPU per call.
fn spawn_stdin_reader(lines: mpsc::Sender<Vec<u8>>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .stack_size(256 * 1024)
        .spawn(move || read_stdin(&lines))
        .map(drop)
}

fn read_stdin(lines: &mpsc::Sender<Vec<u8>>) {
    let mut stdin = std::io::stdin().lock();
    let mut framer = LineFramer::new();
    // One page to start with: most lines are a few hundred bytes, and a zeroed 64 KiB buffer
    // cost every shim 16 page faults, 64 KiB of RSS and a 64 KiB memset before its first read.
    // It grows (up to CHUNK_MAX) only while reads keep filling it, i.e. for large messages.
    let mut chunk = vec![0u8; CHUNK_START];
    loop {
        let read = match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        framer.push(&chunk[..read]);
        if read == chunk.len() && chunk.len() < CHUNK_MAX {
            chunk.resize(chunk.len() * 4, 0);
        }
        while let Some(line) = framer.next_line() {
            match line {
                Line::Frame(line) => {
                    if lines.blocking_send(line).is_err() {
                        return;
                    }
                }
                Line::TooLong(long) => answer_too_long(&long),
            }
        }
    }
    match framer.finish() {
        Some(Line::Frame(line)) => {
            let _ = lines.blocking_send(line);
        }
        Some(Line::TooLong(long)) => answer_too_long(&long),
        None => {}
    }
}

/// A line over zend's limit, which the shim did not keep: answered here as
/// zend would answer it (-32600 with its id), and said on stderr. The line is
/// one stdout write under stdout's lock, so it never lands inside another.
fn answer_too_long(long: &TooLong) {
    eprintln!(
        "zen-shim: dropped a {}-byte message from the MCP client: zen takes at most {} bytes per message",
        long.bytes, long.limit
    );
    if let Some(answer) = long.answer() {
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(&answer)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
    }
}

/// Writes `json` and a newline, and pushes them out: nothing stays buffered.
///
/// A plain blocking write from the runtime's thread: a pipe or socket takes a line at once
/// while the client reads, and while it does not, waiting is the backpressure the shim
/// should apply anyway (stdin keeps being read on its own thread).
async fn write_line(stdout: &mut Stdout, json: &[u8]) -> std::io::Result<()> {
    let mut out = stdout.lock();
    out.write_all(json)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// How to start zend: the one [`find_zend`] finds.
fn launcher() -> Result<Launcher, String> {
    Ok(Launcher {
        program: find_zend()?,
        extra_args: Vec::new(),
    })
}

/// `zend` beside this executable (how both are installed), else `$ZEN_ZEND_BIN`, else PATH.
pub(crate) fn find_zend() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(ZEND_BIN_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Ok(me) = std::env::current_exe() {
        let beside = me.with_file_name("zend");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("zend");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "cannot find the zend binary beside zen-shim or on PATH; install it next to zen-shim \
         or set {ZEND_BIN_ENV}"
    ))
}

/// The bookkeeping is only ever held for a scan; a poisoned lock still holds
/// consistent data.
fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Says once per shim (not on every reconnect) which of its client's keys zend lacks.
fn note_missing_keys(metadata: &tonic::metadata::MetadataMap) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    if let Some(names) = metadata
        .get(zen_proto::meta::KEYS_MISSING)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        && !SAID.swap(true, Ordering::Relaxed)
    {
        eprintln!("{}", zen_shim::env::missing_keys_notice(names));
    }
}

fn add_session_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    use tonic::metadata::{BinaryMetadataValue, MetadataValue};
    use zen_proto::meta;
    let version = std::env::var(VERSION_OVERRIDE_ENV)
        .ok()
        .and_then(|v| MetadataValue::try_from(v).ok())
        .unwrap_or(MetadataValue::from_static(zen_proto::VERSION));
    metadata.insert(meta::SHIM_VERSION, version);
    metadata.insert(meta::SHIM_PID, MetadataValue::from(std::process::id()));
    metadata.insert(
        meta::CLIENT_PID,
        MetadataValue::from(std::os::unix::process::parent_id()),
    );
    if let Some(names) = zen_shim::env::key_names(std::env::vars_os().map(|(name, _)| name))
        .and_then(|names| MetadataValue::try_from(names).ok())
    {
        metadata.insert(meta::CLIENT_KEYS, names);
    }
    if let Ok(cwd) = std::env::current_dir() {
        use std::os::unix::ffi::OsStrExt;
        metadata.insert_bin(
            meta::CWD_BIN,
            BinaryMetadataValue::from_bytes(cwd.as_os_str().as_bytes()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u32) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).into_bytes()
    }

    #[tokio::test]
    async fn a_stop_while_the_connection_is_full_keeps_the_line_for_the_next_one() {
        let (lines_tx, lines) = mpsc::channel(4);
        let (outbound, mut taken) = mpsc::channel(1);
        let book = Arc::new(Mutex::new(Book::default()));
        let (stop, stopped) = oneshot::channel();
        lines_tx.send(request(1)).await.unwrap();
        lines_tx.send(request(2)).await.unwrap();
        let forwarder = tokio::spawn(forward(lines, outbound, Arc::clone(&book), stopped));
        while taken.is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        stop.send(()).unwrap();
        let forwarded = forwarder.await.unwrap();
        assert_eq!(forwarded.unsent, Some(request(2)));
        assert!(forwarded.stdin_open);
        assert_eq!(lock(&book).pending(), 1, "only the line taken is noted");
        assert_eq!(taken.recv().await.unwrap().json.to_vec(), request(1));
    }

    #[tokio::test]
    async fn a_dead_connection_hands_the_line_back_unsent_and_eof_is_reported() {
        let (lines_tx, lines) = mpsc::channel(4);
        let (outbound, taken) = mpsc::channel(1);
        drop(taken);
        let book = Arc::new(Mutex::new(Book::default()));
        let (stop, stopped) = oneshot::channel();
        lines_tx.send(request(3)).await.unwrap();
        let forwarder = tokio::spawn(forward(lines, outbound, Arc::clone(&book), stopped));
        tokio::task::yield_now().await;
        stop.send(()).unwrap();
        let forwarded = forwarder.await.unwrap();
        assert_eq!(forwarded.unsent, Some(request(3)));
        assert_eq!(lock(&book).pending(), 0);

        // On the next connection, stdin's end is reported.
        drop(lines_tx);
        let (outbound, _taken) = mpsc::channel(4);
        let (_stop, stopped) = oneshot::channel();
        let forwarded = forward(forwarded.lines, outbound, book, stopped).await;
        assert!(!forwarded.stdin_open);
    }
}
