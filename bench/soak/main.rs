//! Load and soak (issue #8 item 6; `scripts/soak.sh`, BENCHMARKS.md "Load and soak"): real
//! zen-shim sessions on one zend with its own temporary home and a loopback mock provider.
//!
//! - Load: N sessions (256) initialize at once, then each calls a mix of `chat`, `chat` continuing
//!   the thread it just started, `version`, `listmodels` and `ping` for a bounded number of rounds,
//!   all concurrently. Target: 0 errors.
//! - Soak: N sessions (32) call the same mix for M minutes (10), each paced to one call per
//!   `--pace-ms`. zend's VmRSS (and the shims' sum) is sampled every ~10 s; growth is measured from
//!   the sample after a one-minute warm-up to the last one. Target: ≤ 5 %, 0 errors.
//!
//! Every error is counted (JSON-RPC error, `isError` result, a wrong answer, a 30 s timeout, an
//! unexpected EOF) and listed. Results go to `bench-results/soak-latest.{json,txt}`. Every process
//! started here is stopped and every temporary home removed, also on Ctrl-C, a panic or the
//! watchdog.

// A benchmark prints its table.
#![allow(clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../zen/mock.rs"]
mod mock;
#[allow(dead_code)]
#[path = "../zen/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../zen/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../zen/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use procs::{Bins, Home, Mcp};
use report::{Report, Target, Unit};
use serde_json::{Value, json};
use stats::Summary;

const MIB: f64 = 1024.0 * 1024.0;
/// Error messages kept verbatim (the rest are only counted, by kind).
const KEPT_ERRORS: usize = 20;
/// How long after the sessions close their zend is looked at again: longer than
/// two periods of zend's malloc trimmer (daemon/src/malloc.rs, every 5 s).
const SETTLE: Duration = Duration::from_secs(12);
/// How long after Ctrl-C the orderly stop may take before everything is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Set by SIGINT/SIGTERM/SIGHUP: sessions stop at their next call.
static STOP: AtomicBool = AtomicBool::new(false);
/// Temporary homes to remove if the run has to be cut short.
static HOMES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What one run does (the command line, see `usage`).
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// The mix without `chat`: nothing is written to the store.
    no_chat: bool,
    load: bool,
    soak: bool,
    load_sessions: usize,
    load_rounds: usize,
    soak_sessions: usize,
    soak_time: Duration,
    warmup: Duration,
    sample_every: Duration,
    pace: Duration,
}

impl Plan {
    fn mix(&self) -> &'static [Kind] {
        if self.no_chat { &READ_MIX } else { &ZEN_MIX }
    }

    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut plan = Self {
            quick: false,
            no_chat: false,
            load: true,
            soak: true,
            load_sessions: 256,
            load_rounds: 4,
            soak_sessions: 32,
            soak_time: Duration::from_secs(600),
            warmup: Duration::from_secs(60),
            sample_every: Duration::from_secs(10),
            pace: Duration::from_millis(100),
        };
        let (mut sessions, mut minutes, mut rounds, mut pace) = (None, None, None, None);
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<f64, String> {
                args.next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| *v >= 0.0)
                    .ok_or_else(|| format!("{name} needs a number"))
            };
            match arg.as_str() {
                // cargo bench passes --bench to harness-less benches.
                "--bench" => {}
                "--quick" => plan.quick = true,
                "--load-only" => plan.soak = false,
                "--no-chat" => plan.no_chat = true,
                "--soak-only" => plan.load = false,
                "--sessions" => sessions = Some(value("--sessions")? as usize),
                "--minutes" => minutes = Some(value("--minutes")?),
                "--rounds" => rounds = Some(value("--rounds")? as usize),
                "--pace-ms" => pace = Some(value("--pace-ms")?),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !plan.load && !plan.soak {
            return Err("--load-only and --soak-only exclude each other".into());
        }
        if plan.quick {
            plan.load_sessions = 32;
            plan.load_rounds = 2;
            plan.soak_sessions = 8;
            plan.soak_time = Duration::from_secs(20);
            plan.warmup = Duration::from_secs(6);
            plan.sample_every = Duration::from_secs(2);
        }
        if let Some(n) = sessions {
            if n == 0 {
                return Err("--sessions must be at least 1".into());
            }
            plan.load_sessions = n;
            plan.soak_sessions = n;
        }
        if let Some(m) = minutes {
            plan.soak_time = Duration::from_secs_f64(m * 60.0);
            // The warm-up stays a sixth of a short soak, a minute of a long one.
            plan.warmup = plan.warmup.min(plan.soak_time / 6);
        }
        if let Some(r) = rounds {
            plan.load_rounds = r.max(1);
        }
        if let Some(p) = pace {
            plan.pace = Duration::from_secs_f64(p / 1000.0);
        }
        Ok(plan)
    }

    /// The longest the whole run may take before the watchdog stops it.
    fn watchdog(&self) -> Duration {
        let load = if self.load {
            Duration::from_secs(120) + procs::LINE_TIMEOUT * (5 * self.load_rounds as u32 + 2)
        } else {
            Duration::ZERO
        };
        let soak = if self.soak {
            self.soak_time + Duration::from_secs(180)
        } else {
            Duration::ZERO
        };
        load + soak + Duration::from_secs(60)
    }
}

fn usage() -> &'static str {
    "usage: scripts/soak.sh [--load-only | --soak-only] [--sessions N] [--minutes M] [--rounds R]
                       [--pace-ms P] [--quick]
  load: N sessions (default 256) at once, R rounds (default 4) of chat, chat continued, version,
        listmodels, ping each; 0 errors expected
  soak: N sessions (default 32) for M minutes (default 10), each one call per P ms (default 100);
        zend's RSS growth after a 1 min warm-up ≤ 5 %, 0 errors expected
  --no-chat: the mix without chat (version, listmodels, ping): nothing is written to the store
  --quick: a ~30 s smoke run (32 load sessions × 2 rounds, 8 soak sessions × 20 s)"
}

fn main() -> ExitCode {
    let plan = match Plan::parse(std::env::args().skip(1)) {
        Ok(plan) => plan,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("zen soak: {e}");
            }
            eprintln!("{}", usage());
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let bins = match Bins::locate() {
        Ok(bins) => bins,
        Err(e) => {
            eprintln!(
                "zen soak: {}",
                e.replace("scripts/bench.sh", "scripts/soak.sh")
            );
            return ExitCode::FAILURE;
        }
    };
    if bins.profile_dir != "release" {
        println!(
            "note: the binaries are a `{}` build; figures mean something only for release \
             (scripts/soak.sh)",
            bins.profile_dir
        );
    }
    let fd_limit = procs::raise_fd_limit();
    let needed = (plan.load_sessions.max(plan.soak_sessions) * 4 + 64) as u64;
    if fd_limit < needed {
        eprintln!(
            "zen soak: the open-file limit is {fd_limit}, {needed} are needed for {} sessions: \
             raise it (ulimit -Hn) or pass a smaller --sessions",
            plan.load_sessions.max(plan.soak_sessions)
        );
        return ExitCode::FAILURE;
    }
    procs::become_subreaper();
    install_signal_handlers();
    let watchdog = plan.watchdog();
    std::thread::spawn(move || guard(watchdog));
    let _ = rustls::crypto::ring::default_provider().install_default();

    let (mock_rt, mock) = match mock::start_on_own_runtime() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("zen soak: {e}");
            return ExitCode::FAILURE;
        }
    };

    let started = Instant::now();
    let load_before = loadavg();
    let mut report = Report::default();
    let mut failed = false;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let floor = match chat_floor(&mock, &mock_rt) {
            Ok(floor) => Some(floor),
            Err(e) => {
                report.skip(format!("chat floor: {e}"));
                None
            }
        };
        if plan.load && !STOP.load(Ordering::Relaxed) {
            println!(
                "\n== load: {} sessions × {} rounds",
                plan.load_sessions, plan.load_rounds
            );
            let t = Instant::now();
            match load(&bins, &plan, &mock, floor, &mut report) {
                Ok(ok) => failed |= !ok,
                Err(e) => {
                    failed = true;
                    report.skip(format!("load: {e}"));
                }
            }
            println!("   ({:.1} s)", t.elapsed().as_secs_f64());
        }
        if plan.soak && !STOP.load(Ordering::Relaxed) {
            println!(
                "\n== soak: {} sessions for {:.1} min, one call per {} ms each",
                plan.soak_sessions,
                plan.soak_time.as_secs_f64() / 60.0,
                plan.pace.as_millis()
            );
            let t = Instant::now();
            match soak(&bins, &plan, &mock, floor, &mut report) {
                Ok(ok) => failed |= !ok,
                Err(e) => {
                    failed = true;
                    report.skip(format!("soak: {e}"));
                }
            }
            println!("   ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }));
    procs::stop_all_daemons();
    let interrupted = STOP.load(Ordering::Relaxed);
    if outcome.is_err() {
        failed = true;
        report.skip("the run panicked part-way (see above); the table shows what was measured");
    }
    if interrupted {
        report.skip("interrupted (signal): the figures are partial");
    }

    let machine = json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "profile": bins.profile_dir,
        "quick": plan.quick,
        "plan": format!("{plan:?}"),
        "fd_limit": fd_limit,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "took_s": started.elapsed().as_secs_f64(),
        "git": git_head(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "env": std::env::vars().filter(|(k, _)| k.starts_with("ZEN_BENCH_ENV_")).collect::<BTreeMap<_, _>>(),
    });
    report.finish("zen soak", &results_dir(), "soak-latest", machine, started);
    if interrupted {
        ExitCode::from(130)
    } else if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP ask for an orderly stop (children keep the
/// default dispositions: handlers are reset by exec).
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only stores an atomic;
        // the struct lives for the duration of the call.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Kills everything and exits if the run outlives `watchdog`, or does not stop
/// within `STOP_GRACE` of a signal.
fn guard(watchdog: Duration) {
    let started = Instant::now();
    let mut stop_seen: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if STOP.load(Ordering::Relaxed) && stop_seen.is_none() {
            eprintln!("zen soak: stopping (signal); again in {STOP_GRACE:?} it is forced");
            stop_seen = Some(Instant::now());
        }
        let forced = stop_seen.is_some_and(|t| t.elapsed() > STOP_GRACE);
        if forced || started.elapsed() > watchdog {
            if !forced {
                eprintln!("zen soak: still running after {watchdog:?}; stopping");
            }
            procs::stop_all_daemons();
            for home in HOMES.lock().map(|h| h.clone()).unwrap_or_default() {
                let _ = std::fs::remove_dir_all(home);
            }
            // Shims see their stdin close when this process exits.
            std::process::exit(2);
        }
    }
}

/// A private home whose zend reaches the mock provider.
fn home_for(mock: &mock::Mock) -> Result<Home, String> {
    let mut home = Home::new().map_err(|e| format!("cannot create a zen home: {e}"))?;
    home.env = vec![
        ("OPENAI_BASE_URL".into(), mock.base_url.clone()),
        ("OPENAI_API_KEY".into(), mock::API_KEY.into()),
    ];
    if let Ok(mut homes) = HOMES.lock() {
        homes.push(home.path().to_path_buf());
    }
    Ok(home)
}

/// p50 of a direct HTTP call to the mock: the floor under `chat`.
fn chat_floor(mock: &mock::Mock, rt: &tokio::runtime::Runtime) -> Result<f64, String> {
    let spans = rt.block_on(mock::direct_calls(&mock.base_url, false, 20, 200))?;
    let samples: Vec<_> = spans.into_iter().map(|(_, took)| took).collect();
    Ok(Summary::of(&samples).p50)
}

/// One kind of call of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Initialize,
    Chat,
    ChatContinued,
    Version,
    Listmodels,
    Ping,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Initialize => "initialize",
            Kind::Chat => "chat",
            Kind::ChatContinued => "chat (continued)",
            Kind::Version => "version",
            Kind::Listmodels => "listmodels",
            Kind::Ping => "ping",
        }
    }
}

/// One round of the mix a zen session calls.
const ZEN_MIX: [Kind; 5] = [
    Kind::Chat,
    Kind::Version,
    Kind::ChatContinued,
    Kind::Listmodels,
    Kind::Ping,
];
/// The mix without `chat` (`--no-chat`).
const READ_MIX: [Kind; 3] = [Kind::Version, Kind::Listmodels, Kind::Ping];
/// What the rmcp stdio floor server can answer, as the floor's mix.
const FLOOR_MIX: [Kind; 2] = [Kind::Version, Kind::Ping];

/// A session's thread: its id and how many turns it may still take.
struct Thread {
    id: String,
    turns_left: u32,
}

/// One session's results.
#[derive(Default)]
struct Tally {
    samples: Vec<(Kind, Duration)>,
    errors: u64,
    /// Errors by kind of call and cause.
    by_cause: BTreeMap<String, u64>,
    kept: Vec<String>,
}

impl Tally {
    fn error(&mut self, kind: Kind, cause: &str, message: String) {
        self.errors += 1;
        *self
            .by_cause
            .entry(format!("{}: {cause}", kind.name()))
            .or_default() += 1;
        if self.kept.len() < KEPT_ERRORS {
            self.kept
                .push(format!("{}: {}", kind.name(), truncate(&message, 240)));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        for (cause, n) in other.by_cause {
            *self.by_cause.entry(cause).or_default() += n;
        }
        for message in other.kept {
            if self.kept.len() < KEPT_ERRORS {
                self.kept.push(message);
            }
        }
    }

    fn calls(&self) -> usize {
        self.samples.len() + self.errors as usize
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// Why a call failed; `fatal` ends the session (its pipe is gone).
struct CallError {
    cause: &'static str,
    message: String,
    fatal: bool,
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> Self {
        let (cause, fatal) = match e.kind() {
            io::ErrorKind::TimedOut => ("timeout", false),
            io::ErrorKind::UnexpectedEof => ("unexpected EOF", true),
            io::ErrorKind::BrokenPipe => ("broken pipe", true),
            _ => ("i/o", true),
        };
        Self {
            cause,
            message: e.to_string(),
            fatal,
        }
    }
}

fn wrong(message: String) -> CallError {
    CallError {
        cause: "wrong answer",
        message,
        fatal: false,
    }
}

/// Makes one call of the mix and checks its answer.
fn call(client: &mut Mcp, kind: Kind, thread: &mut Option<Thread>) -> Result<Duration, CallError> {
    let continued = match (kind, thread.as_ref()) {
        (Kind::ChatContinued, Some(t)) if t.turns_left >= 2 => Some(t.id.clone()),
        _ => None,
    };
    let (method, params) = match kind {
        Kind::Initialize => ("initialize", Some(procs::initialize_params())),
        Kind::Chat | Kind::ChatContinued => {
            let mut arguments = json!({"prompt": "Say hi.", "model": mock::CHAT_MODEL});
            if let Some(id) = &continued {
                arguments["continuation_id"] = json!(id);
            }
            (
                "tools/call",
                Some(json!({"name": "chat", "arguments": arguments}).to_string()),
            )
        }
        Kind::Version => (
            "tools/call",
            Some(r#"{"name":"version","arguments":{}}"#.to_owned()),
        ),
        Kind::Listmodels => (
            "tools/call",
            Some(r#"{"name":"listmodels","arguments":{}}"#.to_owned()),
        ),
        Kind::Ping => ("ping", None),
    };
    let (line, elapsed) = client.request_timed(method, params.as_deref())?;
    let answer: Value = serde_json::from_str(&line)
        .map_err(|e| wrong(format!("not JSON ({e}): {}", truncate(&line, 200))))?;
    if let Some(error) = answer.get("error") {
        return Err(CallError {
            cause: "JSON-RPC error",
            message: error.to_string(),
            fatal: false,
        });
    }
    let result = &answer["result"];
    let text = result["content"][0]["text"].as_str().unwrap_or("");
    if result["isError"] == true {
        return Err(CallError {
            cause: "isError result",
            message: text.to_owned(),
            fatal: false,
        });
    }
    match kind {
        Kind::Initialize => {
            if result["serverInfo"].is_null() {
                return Err(wrong(format!("no serverInfo: {}", truncate(&line, 200))));
            }
            client.notify("notifications/initialized")?;
        }
        Kind::Chat | Kind::ChatContinued => {
            let Some(found) = parse_thread(text) else {
                return Err(wrong(format!(
                    "no answer or continuation_id: {}",
                    truncate(text, 200)
                )));
            };
            if !text.starts_with("mock answer") {
                return Err(wrong(format!(
                    "not the mock's answer: {}",
                    truncate(text, 200)
                )));
            }
            if let Some(id) = continued
                && found.id != id
            {
                return Err(wrong(format!(
                    "continued thread {id} but got {} back",
                    found.id
                )));
            }
            *thread = Some(found);
        }
        Kind::Version | Kind::Listmodels => {
            if text.is_empty() {
                return Err(wrong(format!("no text: {}", truncate(&line, 200))));
            }
        }
        Kind::Ping => {
            if !result.is_object() {
                return Err(wrong(format!("no result: {}", truncate(&line, 200))));
            }
        }
    }
    Ok(elapsed)
}

/// The thread id and turns left from a chat answer's footer
/// ("continuation_id: <id> (<n> turns left) — ...").
fn parse_thread(text: &str) -> Option<Thread> {
    let rest = &text[text.rfind("continuation_id: ")? + "continuation_id: ".len()..];
    let (id, rest) = rest.split_once(" (")?;
    let turns_left = rest.split_whitespace().next()?.parse().ok()?;
    Some(Thread {
        id: id.to_owned(),
        turns_left,
    })
}

/// When sessions stop calling.
#[derive(Clone, Copy)]
enum Until {
    Rounds(usize),
    /// This long after every session is ready.
    For(Duration),
}

/// Shared by the sessions of one phase.
struct Phase<'a> {
    home: &'a Home,
    program: &'a Path,
    mix: &'a [Kind],
    until: Until,
    pace: Duration,
    /// All sessions are initialized (or failed to): calls start together.
    ready: Barrier,
    /// All sessions have finished calling: they close together.
    done: Barrier,
    /// When the calls started (set just before `ready` opens).
    start: OnceLock<Instant>,
    /// Sessions that have stopped calling (they wait at `done`, still open).
    finished: AtomicUsize,
    n: usize,
    calls: AtomicU64,
    pids: Mutex<Vec<u32>>,
}

impl<'a> Phase<'a> {
    fn new(home: &'a Home, program: &'a Path, mix: &'a [Kind], until: Until, n: usize) -> Self {
        Self {
            home,
            program,
            mix,
            until,
            pace: Duration::ZERO,
            ready: Barrier::new(n + 1),
            done: Barrier::new(n + 1),
            start: OnceLock::new(),
            finished: AtomicUsize::new(0),
            n,
            calls: AtomicU64::new(0),
            pids: Mutex::new(Vec::new()),
        }
    }

    /// Whether some session is still calling.
    fn calling(&self) -> bool {
        self.finished.load(Ordering::Acquire) < self.n
    }

    fn elapsed(&self) -> Duration {
        self.start.get().map(Instant::elapsed).unwrap_or_default()
    }
}

/// One session: spawn, initialize, wait for the others, call until told, wait,
/// close. Always reaches both barriers.
fn session(phase: &Phase, index: usize) -> Tally {
    let mut tally = Tally::default();
    let client = Mcp::spawn(phase.home.command(phase.program));
    let mut client = match client {
        Ok(mut client) => {
            if let Ok(mut pids) = phase.pids.lock() {
                pids.push(client.pid());
            }
            match call(&mut client, Kind::Initialize, &mut None) {
                Ok(elapsed) => {
                    tally.samples.push((Kind::Initialize, elapsed));
                    Some(client)
                }
                Err(e) => {
                    tally.error(Kind::Initialize, e.cause, e.message);
                    None
                }
            }
        }
        Err(e) => {
            tally.error(Kind::Initialize, "spawn", e.to_string());
            None
        }
    };
    phase.ready.wait();
    // Sessions start at different points of the mix, so every kind of call is
    // in flight at once.
    let mut thread = None;
    let mut i = index;
    if let Some(c) = client.as_mut() {
        let mut calls = 0usize;
        loop {
            let more = match phase.until {
                Until::Rounds(r) => calls < r * phase.mix.len(),
                Until::For(time) => phase.elapsed() < time,
            };
            if !more || STOP.load(Ordering::Relaxed) {
                break;
            }
            let kind = phase.mix[i % phase.mix.len()];
            i += 1;
            calls += 1;
            let started = Instant::now();
            match call(c, kind, &mut thread) {
                Ok(elapsed) => tally.samples.push((kind, elapsed)),
                Err(e) => {
                    tally.error(kind, e.cause, e.message);
                    if e.fatal {
                        break;
                    }
                }
            }
            phase.calls.fetch_add(1, Ordering::Relaxed);
            if let Some(left) = phase.pace.checked_sub(started.elapsed()) {
                std::thread::sleep(left);
            }
        }
    }
    phase.finished.fetch_add(1, Ordering::Release);
    phase.done.wait();
    if let Some(c) = client {
        c.close();
    }
    tally
}

/// What /proc says about zend (and the shims) at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    t: f64,
    zend_rss: f64,
    shims_rss: f64,
    threads: u64,
    fds: u64,
    /// Unix-socket fds: the listener and one per session (what a session leak
    /// would leave behind; TCP fds are the provider pool, kept alive on purpose).
    unix_fds: u64,
    store: f64,
    calls: u64,
}

impl Sample {
    fn take(started: Instant, zend: u32, shims: &[u32], home: &Home, calls: u64) -> Self {
        Self {
            t: started.elapsed().as_secs_f64(),
            zend_rss: procs::status_kib(zend, "VmRSS").unwrap_or(0) as f64,
            shims_rss: shims
                .iter()
                .map(|pid| procs::status_kib(*pid, "VmRSS").unwrap_or(0) as f64)
                .fold(0.0, |a, b| a + b),
            threads: status_count(zend, "Threads"),
            fds: std::fs::read_dir(format!("/proc/{zend}/fd"))
                .map(|d| d.count() as u64)
                .unwrap_or(0),
            unix_fds: unix_socket_fds(zend),
            store: disk_usage(&home.path().join("data")),
            calls,
        }
    }

    fn json(&self) -> Value {
        json!({
            "t_s": self.t, "zend_rss": self.zend_rss, "shims_rss": self.shims_rss,
            "zend_threads": self.threads, "zend_fds": self.fds, "zend_unix_fds": self.unix_fds, "store_bytes": self.store,
            "calls": self.calls,
        })
    }

    fn print(&self) {
        println!(
            "  t={:>6.1} s  zend RSS {:>7.2} MiB  shims {:>8.2} MiB  threads {:>3}  fds {:>4} ({:>3} unix)  \
             store {:>7.2} MiB  calls {}",
            self.t,
            self.zend_rss / MIB,
            self.shims_rss / MIB,
            self.threads,
            self.fds,
            self.unix_fds,
            self.store / MIB,
            self.calls
        );
    }
}

/// How many of `pid`'s fds are Unix sockets (inodes listed in its /proc/<pid>/net/unix).
fn unix_socket_fds(pid: u32) -> u64 {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    // Num RefCount Protocol Flags Type St Inode [Path]
    let inodes: std::collections::HashSet<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(6))
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
        .count() as u64
}

fn status_count(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Bytes on disk (allocated blocks) under `dir`.
fn disk_usage(dir: &Path) -> f64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_usage(&entry.path()) as u64;
        } else {
            total += meta.blocks() * 512;
        }
    }
    total as f64
}

/// Runs one phase's sessions; `watch` runs on this thread once every session
/// is ready, while they call (it samples; `Phase::calling` says when to stop).
fn run_sessions(phase: &Phase, watch: impl FnOnce(&Phase)) -> Result<Tally, String> {
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(phase.n);
        let mut failed = None;
        for index in 0..phase.n {
            let spawned = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || session(phase, index));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    failed = Some(format!("cannot start a session thread: {e}"));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // The barriers wait for n: stand in for the sessions never started.
            STOP.store(true, Ordering::Relaxed);
            for _ in handles.len()..phase.n {
                phase.finished.fetch_add(1, Ordering::Release);
            }
            let _ = phase.start.set(Instant::now());
            for _ in handles.len()..phase.n {
                scope.spawn(|| {
                    phase.ready.wait();
                    phase.done.wait();
                });
            }
            phase.ready.wait();
            phase.done.wait();
            for handle in handles {
                let _ = handle.join();
            }
            return Err(e);
        }
        let _ = phase.start.set(Instant::now());
        phase.ready.wait();
        watch(phase);
        phase.done.wait();
        let mut tally = Tally::default();
        for handle in handles {
            match handle.join() {
                Ok(t) => tally.merge(t),
                Err(_) => tally.error(
                    Kind::Initialize,
                    "panic",
                    "a session thread panicked".into(),
                ),
            }
        }
        Ok(tally)
    })
}

/// Latency rows per kind of call, and the details.
fn latency_rows(
    report: &mut Report,
    section: &'static str,
    tally: &Tally,
    floors: &BTreeMap<Kind, (f64, String)>,
) -> Value {
    let mut by_kind: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    for (kind, elapsed) in &tally.samples {
        by_kind.entry(*kind).or_default().push(*elapsed);
    }
    let mut details = serde_json::Map::new();
    for (kind, samples) in &by_kind {
        let s = Summary::of(samples);
        let floor = floors.get(kind).map(|(f, what)| (*f, what.as_str()));
        report.row(
            section,
            format!("{} p50 (n = {})", kind.name(), s.n),
            s.p50,
            Unit::Ms,
            floor,
            Target::None,
            format!(
                "p95 {} p99 {} max {}",
                Unit::Ms.show(s.p95),
                Unit::Ms.show(s.p99),
                Unit::Ms.show(s.max)
            ),
        );
        details.insert(kind.name().into(), s.json());
    }
    let all: Vec<Duration> = tally
        .samples
        .iter()
        .filter(|(k, _)| *k != Kind::Initialize)
        .map(|(_, d)| *d)
        .collect();
    let s = Summary::of(&all);
    report.row(
        section,
        format!("every call p50 (n = {})", s.n),
        s.p50,
        Unit::Ms,
        None,
        Target::None,
        format!(
            "p95 {} p99 {} max {}",
            Unit::Ms.show(s.p95),
            Unit::Ms.show(s.p99),
            Unit::Ms.show(s.max)
        ),
    );
    details.insert("all".into(), s.json());
    Value::Object(details)
}

fn error_rows(report: &mut Report, section: &'static str, tally: &Tally) -> Value {
    report.row(
        section,
        format!("errors (of {} calls)", tally.calls()),
        tally.errors as f64,
        Unit::Count,
        None,
        Target::AtMost(0.0),
        if tally.errors == 0 {
            String::new()
        } else {
            tally
                .by_cause
                .iter()
                .map(|(c, n)| format!("{c} × {n}"))
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
    for message in &tally.kept {
        println!("  error: {message}");
    }
    json!({"count": tally.errors, "by_cause": tally.by_cause, "first": tally.kept})
}

/// The floor under version and ping: the same number of rmcp stdio floor
/// servers making the same calls at once. Returns p50 per kind.
fn stdio_floor(bins: &Bins, home: &Home, n: usize, rounds: usize) -> BTreeMap<Kind, f64> {
    let phase = Phase::new(home, &bins.floor, &FLOOR_MIX, Until::Rounds(rounds), n);
    let Ok(tally) = run_sessions(&phase, |_| {}) else {
        return BTreeMap::new();
    };
    let mut by_kind: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    for (kind, elapsed) in tally.samples {
        by_kind.entry(kind).or_default().push(elapsed);
    }
    by_kind
        .into_iter()
        .map(|(k, s)| (k, Summary::of(&s).p50))
        .collect()
}

fn floors_for(
    n: usize,
    chat: Option<f64>,
    stdio: &BTreeMap<Kind, f64>,
) -> BTreeMap<Kind, (f64, String)> {
    let mut floors = BTreeMap::new();
    if let Some(chat) = chat {
        for kind in [Kind::Chat, Kind::ChatContinued] {
            floors.insert(kind, (chat, "direct HTTP call to the mock, p50".to_owned()));
        }
    }
    for (kind, p50) in stdio {
        floors.insert(
            *kind,
            (*p50, format!("{n} rmcp stdio floor servers at once, p50")),
        );
    }
    floors
}

/// Load: `load_sessions` sessions at once, `load_rounds` rounds of the mix each.
fn load(
    bins: &Bins,
    plan: &Plan,
    mock: &mock::Mock,
    chat_floor: Option<f64>,
    report: &mut Report,
) -> Result<bool, String> {
    let n = plan.load_sessions;
    let home = home_for(mock)?;
    let stdio = stdio_floor(bins, &home, n, plan.load_rounds);
    let (zend, _) = home.start_daemon(bins).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let idle = Sample::take(started, zend, &[], &home, 0);
    let phase = Phase::new(
        &home,
        &bins.shim,
        plan.mix(),
        Until::Rounds(plan.load_rounds),
        n,
    );
    let mut ready = Sample::default();
    let mut peak = Sample::default();
    let tally = run_sessions(&phase, |phase| {
        let pids = phase.pids.lock().map(|p| p.clone()).unwrap_or_default();
        ready = Sample::take(started, zend, &pids, &home, 0);
        // The highest RSS while they call, and the state once all are done
        // (every session still open).
        while phase.calling() {
            std::thread::sleep(Duration::from_millis(250));
            let s = Sample::take(started, zend, &[], &home, 0);
            if s.zend_rss > peak.zend_rss {
                peak = s;
            }
        }
        let s = Sample::take(
            started,
            zend,
            &pids,
            &home,
            phase.calls.load(Ordering::Relaxed),
        );
        if s.zend_rss >= peak.zend_rss {
            peak = s;
        }
        peak.shims_rss = s.shims_rss;
    })?;
    let took = phase.elapsed();
    if !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(SETTLE);
    }
    let after = Sample::take(
        started,
        zend,
        &[],
        &home,
        phase.calls.load(Ordering::Relaxed),
    );
    for (what, s) in [
        ("idle", &idle),
        ("all ready", &ready),
        ("peak", &peak),
        ("after close", &after),
    ] {
        print!("  {what:<12}");
        s.print();
    }
    home.stop_daemon();

    let section = "load";
    let calls = tally.calls() - n;
    report.row(
        section,
        format!(
            "sessions at once (initialized: {})",
            tally
                .samples
                .iter()
                .filter(|(k, _)| *k == Kind::Initialize)
                .count()
        ),
        n as f64,
        Unit::Count,
        None,
        Target::None,
        format!(
            "{} rounds × {} calls each",
            plan.load_rounds,
            plan.mix().len()
        ),
    );
    let errors = error_rows(report, section, &tally);
    report.row(
        section,
        "calls/s (all sessions)",
        calls as f64 / took.as_secs_f64().max(1e-9),
        Unit::PerSec,
        None,
        Target::None,
        format!("{calls} calls in {:.1} s", took.as_secs_f64()),
    );
    let latency = latency_rows(report, section, &tally, &floors_for(n, chat_floor, &stdio));
    report.row(
        section,
        format!("zend peak RSS, {n} sessions calling"),
        peak.zend_rss,
        Unit::MiB,
        Some((idle.zend_rss, "zend idle, same run")),
        Target::None,
        format!(
            "{} once all were initialized; shims' sum {}",
            Unit::MiB.show(ready.zend_rss),
            Unit::MiB.show(peak.shims_rss)
        ),
    );
    report.row(
        section,
        "zend RSS 12 s after every session closed",
        after.zend_rss,
        Unit::MiB,
        Some((idle.zend_rss, "zend idle, same run")),
        Target::None,
        format!("threads {} idle, {} after", idle.threads, after.threads),
    );
    fd_row(
        report,
        section,
        [&idle, &ready, &after],
        "with all sessions",
    );
    report.detail(
        "load",
        json!({
            "sessions": n, "rounds": plan.load_rounds, "calls": calls,
            "errors": errors, "latency": latency, "calls_s": took.as_secs_f64(),
            "idle": idle.json(), "ready": ready.json(), "after_close": after.json(),
        }),
    );
    Ok(tally.errors == 0 && after.unix_fds <= idle.unix_fds)
}

/// Soak: `soak_sessions` sessions for `soak_time`, sampled every `sample_every`.
fn soak(
    bins: &Bins,
    plan: &Plan,
    mock: &mock::Mock,
    chat_floor: Option<f64>,
    report: &mut Report,
) -> Result<bool, String> {
    let n = plan.soak_sessions;
    let home = home_for(mock)?;
    let (zend, _) = home.start_daemon(bins).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let idle = Sample::take(started, zend, &[], &home, 0);
    print!("  idle      ");
    idle.print();
    let mut phase = Phase::new(&home, &bins.shim, plan.mix(), Until::For(plan.soak_time), n);
    phase.pace = plan.pace;
    let mut samples: Vec<Sample> = Vec::new();
    let tally = run_sessions(&phase, |phase| {
        let pids = phase.pids.lock().map(|p| p.clone()).unwrap_or_default();
        let sample = |phase: &Phase| {
            let s = Sample::take(
                *phase.start.get().unwrap_or(&started),
                zend,
                &pids,
                &home,
                phase.calls.load(Ordering::Relaxed),
            );
            s.print();
            s
        };
        let mut next = Duration::ZERO;
        while phase.calling() {
            if phase.elapsed() >= next {
                samples.push(sample(phase));
                next += plan.sample_every;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The end: every session has stopped calling and is still open.
        print!("  end: ");
        samples.push(sample(phase));
    })?;
    let took = phase.elapsed();
    if !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(SETTLE);
    }
    let after = Sample::take(
        started,
        zend,
        &[],
        &home,
        phase.calls.load(Ordering::Relaxed),
    );
    print!("  closed    ");
    after.print();
    home.stop_daemon();

    let section = "soak";
    let calls = tally.calls() - n;
    let errors = error_rows(report, section, &tally);
    report.row(
        section,
        format!("calls/s ({n} sessions)"),
        calls as f64 / took.as_secs_f64().max(1e-9),
        Unit::PerSec,
        None,
        Target::None,
        format!(
            "{calls} calls in {:.1} min, paced at one per {} ms per session",
            took.as_secs_f64() / 60.0,
            plan.pace.as_millis()
        ),
    );
    let latency = latency_rows(
        report,
        section,
        &tally,
        &floors_for(n, chat_floor, &BTreeMap::new()),
    );
    let warm = samples
        .iter()
        .find(|s| s.t >= plan.warmup.as_secs_f64())
        .copied()
        .unwrap_or_default();
    let end = samples.last().copied().unwrap_or_default();
    let growth = if warm.zend_rss > 0.0 {
        (end.zend_rss - warm.zend_rss) / warm.zend_rss * 100.0
    } else {
        f64::NAN
    };
    let after_warm: Vec<&Sample> = samples.iter().filter(|s| s.t >= warm.t).collect();
    let peak = after_warm.iter().map(|s| s.zend_rss).fold(0.0, f64::max);
    let slope = slope_per_min(&after_warm);
    report.row(
        section,
        format!("zend RSS at the end ({:.0} s)", end.t),
        end.zend_rss,
        Unit::MiB,
        Some((warm.zend_rss, "after the warm-up")),
        Target::None,
        format!(
            "peak after warm-up {}, trend {:+.3} MiB/min, idle before {}",
            Unit::MiB.show(peak),
            slope / MIB,
            Unit::MiB.show(idle.zend_rss)
        ),
    );
    report.row(
        section,
        format!("zend RSS growth after the warm-up ({:.0} s), %", warm.t),
        growth,
        Unit::Count,
        None,
        if plan.quick {
            Target::None
        } else {
            Target::AtMost(5.0)
        },
        "(end − after warm-up) / after warm-up",
    );
    report.row(
        section,
        format!("zen-shims RSS, sum of {n}"),
        end.shims_rss,
        Unit::MiB,
        Some((warm.shims_rss, "after the warm-up")),
        Target::None,
        "",
    );
    report.row(
        section,
        "zend RSS 12 s after every session closed",
        after.zend_rss,
        Unit::MiB,
        Some((idle.zend_rss, "zend idle, same run")),
        Target::None,
        "",
    );
    report.row(
        section,
        "store on disk at the end",
        end.store,
        Unit::MiB,
        Some((idle.store, "before the soak")),
        Target::None,
        "",
    );
    report.row(
        section,
        "zend threads: after close",
        after.threads as f64,
        Unit::Count,
        Some((idle.threads as f64, "idle, before")),
        Target::None,
        format!("{} during the soak", end.threads),
    );
    fd_row(report, section, [&idle, &end, &after], "at the end");
    report.detail(
        "soak",
        json!({
            "sessions": n, "seconds": took.as_secs_f64(), "pace_ms": plan.pace.as_millis() as u64,
            "calls": calls, "errors": errors, "latency": latency,
            "rss_growth_pct": growth, "rss_trend_bytes_per_min": slope,
            "warmup": warm.json(), "end": end.json(), "idle": idle.json(), "after_close": after.json(),
            "samples": samples.iter().map(Sample::json).collect::<Vec<_>>(),
        }),
    );
    let growth_ok = plan.quick || growth <= 5.0;
    Ok(tally.errors == 0 && growth_ok && after.unix_fds <= idle.unix_fds)
}

/// Least-squares slope of zend's RSS over time, in bytes per minute.
/// The fd-leak row: Unix-socket fds after close must be back to idle (TCP fds are the provider pool).
/// `busy` is the sample with every session live, named by `when`.
fn fd_row(
    report: &mut Report,
    section: &'static str,
    [idle, busy, after]: [&Sample; 3],
    when: &str,
) {
    report.row(
        section,
        "zend Unix-socket fds after every session closed",
        after.unix_fds as f64,
        Unit::Count,
        Some((idle.unix_fds as f64, "idle, before")),
        Target::AtMost(idle.unix_fds as f64),
        format!(
            "{} {when}; all fds: {} idle, {} {when}, {} after close",
            busy.unix_fds, idle.fds, busy.fds, after.fds
        ),
    );
}

fn slope_per_min(samples: &[&Sample]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.zend_rss).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.t - mean_t) * (s.zend_rss - mean_r);
        den += (s.t - mean_t).powi(2);
    }
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn git_head() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn results_dir() -> PathBuf {
    match std::env::var_os("ZEN_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("bench-results")
        }
    }
}
