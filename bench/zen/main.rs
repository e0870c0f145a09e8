//! zen's benchmark suite: what users feel, each figure beside a floor measured
//! in the same run. See BENCHMARKS.md; run it with `scripts/bench.sh`, which
//! builds zend and zen-shim as shipped (release, thin LTO, each on its own) and
//! then runs this with `cargo bench -p zen-bench --bench zen`.
//!
//! Loopback only, bounded in time (about a minute; `--quick` for a smoke run).
//! Prints a table and writes `bench-results/latest.json` (+ `latest.txt`).
//! Nothing here asserts on time: targets are reported, never enforced.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod bare;
mod caching;
mod callgrind;
mod calls;
mod chat;
mod cold;
mod context;
mod echo;
mod grpc;
mod instructions;
mod memory_section;
mod mock;
mod peer;
mod procs;
mod report;
mod stats;
mod store;
mod versus;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use calls::*;
use chat::*;
use cold::*;
use context::*;
use instructions::*;
use memory_section::*;
use procs::{Bins, Home, Mcp};
use report::{Report, Target, Unit};
use stats::Summary;
use versus::*;

const MIB: f64 = 1024.0 * 1024.0;
const VERSION_CALL: &str = r#"{"name":"version","arguments":{}}"#;
/// The whole run is abandoned (daemons stopped) after this long.
const WATCHDOG: Duration = Duration::from_secs(600);

/// How much of everything to do.
struct Plan {
    cold_n: usize,
    autostart_n: usize,
    rtt_n: usize,
    rtt_warmup: usize,
    throughput_sessions: &'static [usize],
    throughput_warmup: Duration,
    throughput_for: Duration,
    memory_sessions: &'static [usize],
    chat_n: usize,
    /// How long `chat` sits idle before each call of the after-idle rows.
    idle_pause: Duration,
    /// How many after-idle calls (each with its floors after the same pause).
    idle_n: usize,
    peer_cold_n: usize,
    store: store::Sizes,
}

impl Plan {
    fn full() -> Self {
        Self {
            cold_n: 40,
            autostart_n: 10,
            rtt_n: 4000,
            rtt_warmup: 300,
            throughput_sessions: &[1, 8, 64],
            throughput_warmup: Duration::from_millis(300),
            throughput_for: Duration::from_secs(2),
            memory_sessions: &[8, 64, 256],
            chat_n: 1000,
            idle_pause: Duration::from_millis(25),
            idle_n: 62,
            peer_cold_n: 20,
            store: store::Sizes::full(),
        }
    }

    fn quick() -> Self {
        Self {
            cold_n: 5,
            autostart_n: 2,
            rtt_n: 300,
            rtt_warmup: 30,
            throughput_sessions: &[1, 8],
            throughput_warmup: Duration::from_millis(100),
            throughput_for: Duration::from_millis(300),
            memory_sessions: &[8],
            chat_n: 50,
            idle_pause: Duration::from_millis(25),
            idle_n: 3,
            peer_cold_n: 3,
            store: store::Sizes::quick(),
        }
    }
}

/// Figures one section measures and a later one compares against.
#[derive(Default)]
struct Floors {
    floor_cold: Summary,
    echo_rtt: Summary,
    floor_hwm: f64,
    floor_rss: f64,
    /// zen's own figures, set by earlier sections, that the peer's rows put zen against.
    zen: ZenFigures,
}

/// zen's side of each "zen vs the peer" row (0 when its section did not run).
#[derive(Default)]
struct ZenFigures {
    cold_p50: f64,
    shim_hwm: f64,
    /// tools/list + instructions with only `chat` enabled: the peer's one tool.
    context_chat_only: f64,
    /// `chat` p50 minus the direct call's p50, back to back (section 6).
    chat_overhead_p50: f64,
    /// CPU per `chat` call, shim + zend (section 6).
    chat_cpu: f64,
    /// `chat` calls/s with 8 sessions, and the RSS of those 8 shims + zend right after (section 4).
    chat8_rate: f64,
    chat8_rss: f64,
    chat8_pss: f64,
}

fn main() -> ExitCode {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("ZEN_BENCH_QUICK").is_some();
    let with_callgrind = std::env::args().any(|a| a == "--callgrind");
    // --only=round-trip,memory,... runs just those sections (names as printed, spaces as dashes).
    let only: Option<Vec<String>> = std::env::args()
        .find_map(|a| a.strip_prefix("--only=").map(str::to_owned))
        .map(|list| {
            list.split(',')
                .map(|s| s.trim().replace(' ', "-"))
                .collect()
        });
    let mut plan = if quick { Plan::quick() } else { Plan::full() };
    // ZEN_BENCH_CHAT_N=20000 makes the chat section long enough to profile zend under it.
    if let Some(n) = std::env::var("ZEN_BENCH_CHAT_N")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        plan.chat_n = n;
    }
    // ZEN_BENCH_IDLE_MS=2000 (with ZEN_BENCH_IDLE_N) pauses as long as a model's answer takes.
    let knob = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = knob("ZEN_BENCH_IDLE_MS") {
        plan.idle_pause = Duration::from_millis(ms);
    }
    if let Some(n) = knob("ZEN_BENCH_IDLE_N") {
        plan.idle_n = usize::try_from(n).unwrap_or(usize::MAX).max(1);
    }
    let bins = match Bins::locate() {
        Ok(bins) => bins,
        Err(e) => {
            eprintln!("zen bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // bench-bin: where scripts/bench.sh puts its release builds side by side.
    if bins.profile_dir != "release" && bins.profile_dir != "bench-bin" {
        println!(
            "note: the binaries are a `{}` build; figures mean something only for release \
             (scripts/bench.sh)",
            bins.profile_dir
        );
    }
    println!(
        "zen-shim: {}; floor server: {}",
        procs::linkage(&bins.shim),
        procs::linkage(&bins.floor)
    );
    let stale = stale(&bins);
    for bin in &stale {
        println!("warning: {bin} is older than its sources; run scripts/bench.sh to rebuild it");
    }
    let fd_limit = procs::raise_fd_limit();
    procs::become_subreaper();
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("zen bench: still running after {WATCHDOG:?}; stopping");
        procs::stop_all_daemons();
        std::process::exit(2);
    });
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The mock provider gets its own runtime thread; direct calls run on the
    // main thread (a current-thread runtime), so their CPU time is the main
    // thread's alone.
    let (_mock_rt, mock) = match mock::start_on_own_runtime() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("zen bench: {e}");
            return ExitCode::FAILURE;
        }
    };

    let started = Instant::now();
    let load_before = loadavg();
    let mut report = Report::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&bins, &plan, &mock, &mut report, only.as_deref());
        if with_callgrind && wanted(only.as_deref(), "instructions") {
            println!("\n== instructions (callgrind)");
            let t = Instant::now();
            if let Err(e) = instructions(&bins, &mock.base_url, &mut report) {
                report.skip(format!("instructions: {e}"));
            }
            println!("   ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }));
    procs::stop_all_daemons();
    if outcome.is_err() {
        report.skip("the run panicked part-way (see above); the table shows what was measured");
    }

    let mut machine = machine(&bins, quick, fd_limit, &load_before, started.elapsed());
    machine["stale_binaries"] = json!(stale);
    report.finish("zen bench", &results_dir(), "latest", machine, started);
    ExitCode::SUCCESS
}

/// Whether `--only` (if given) names this section.
fn wanted(only: Option<&[String]>, section: &str) -> bool {
    only.is_none_or(|list| list.iter().any(|s| *s == section.replace(' ', "-")))
}

fn run(bins: &Bins, plan: &Plan, mock: &mock::Mock, report: &mut Report, only: Option<&[String]>) {
    let mut floors = Floors::default();

    // The daemon most sections share, started the way a shim starts it, and
    // able to reach the mock provider.
    let home = match Home::new() {
        Ok(mut home) => {
            home.env = vec![
                ("OPENAI_BASE_URL".into(), mock.base_url.clone()),
                ("OPENAI_API_KEY".into(), mock::API_KEY.into()),
            ];
            home
        }
        Err(e) => {
            report.skip(format!("everything: cannot create a zen home: {e}"));
            return;
        }
    };
    let zend = match home.start_daemon(bins) {
        Ok((pid, _)) => pid,
        Err(e) => {
            report.skip(format!("everything: {e}"));
            return;
        }
    };

    type Section<'a> = Box<dyn FnOnce(&mut Report, &mut Floors) -> Result<(), String> + 'a>;
    let sections: Vec<(&str, Section)> = vec![
        (
            "cold start",
            Box::new(|r, f| cold_start(bins, &home, zend, plan, r, f)),
        ),
        (
            "round trip",
            Box::new(|r, f| round_trip(bins, &home, zend, plan, r, f)),
        ),
        (
            "throughput",
            Box::new(|r, f| throughput(bins, &home, plan, mock, r, f)),
        ),
        ("memory", Box::new(|r, f| memory(bins, plan, r, f))),
        ("auto-start", Box::new(|r, f| auto_start(bins, plan, r, f))),
    ];
    let mut tools = Vec::new();
    for (name, section) in sections {
        if !wanted(only, name) {
            continue;
        }
        println!("\n== {name}");
        let t = Instant::now();
        if let Err(e) = section(report, &mut floors) {
            report.skip(format!("{name}: {e}"));
        }
        println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if wanted(only, "context") || wanted(only, "chat") {
        println!("\n== context");
        match context(bins, &home, report) {
            Ok(names) => tools = names,
            Err(e) => report.skip(format!("context: {e}")),
        }
        // Only `chat`, as the peer offers: what the peer's context row is put against.
        if !tools.is_empty()
            && let Err(e) = context_chat_only(bins, &home, &tools, report, &mut floors)
        {
            report.skip(format!("context with only chat: {e}"));
        }
    }
    if wanted(only, "chat") {
        println!("\n== chat");
        let t = Instant::now();
        match chat(bins, &home, zend, &tools, plan, mock, report) {
            Ok((overhead, cpu)) => {
                floors.zen.chat_overhead_p50 = overhead;
                floors.zen.chat_cpu = cpu;
            }
            Err(e) => report.skip(format!("chat: {e}")),
        }
        println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if wanted(only, "store") {
        println!("\n== store");
        let t = Instant::now();
        if let Err(e) = store::run(bins, &plan.store, mock, report) {
            report.skip(format!("store: {e}"));
        }
        println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if wanted(only, "caching") {
        println!("\n== caching");
        let t = Instant::now();
        if let Err(e) = caching::run(bins, report) {
            report.skip(format!("caching: {e}"));
        }
        println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if wanted(only, "peer") {
        println!("\n== peer");
        let t = Instant::now();
        match peer::fetch(&target_dir(bins).join("bench-peer")) {
            Ok(peer) => {
                if let Err(e) = peer_row(&peer, bins, &home, plan, report, &floors) {
                    report.skip(format!("peer ({}): {e}", peer::PACKAGE));
                }
                // A step of its own: the peer's calls need the mock behind HTTPS; if that
                // fails, the rows above stand.
                if let Err(e) = peer_chat(&peer, plan, mock, report, &floors) {
                    report.skip(format!("peer ({}) against the mock: {e}", peer::PACKAGE));
                }
            }
            Err(e) => report.skip(format!("peer ({}): {e}", peer::PACKAGE)),
        }
        println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    home.stop_daemon();
}

pub(crate) fn io<T>(result: std::io::Result<T>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

pub(crate) fn shim_session(bins: &Bins, home: &Home) -> Result<Mcp, String> {
    io(procs::cold_start(home.command(&bins.shim))).map(|(client, _)| client)
}

fn results_dir() -> PathBuf {
    match std::env::var_os("ZEN_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_dir().join("bench-results"),
    }
}

fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Sources newer than the binary built from them: the figures would be stale.
fn stale(bins: &Bins) -> Vec<String> {
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_file() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let root = workspace_dir();
    let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut stale = Vec::new();
    for (bin, sources) in [
        (&bins.zend, &["daemon/src", "proto", "config"][..]),
        (&bins.shim, &["shim/src", "proto"][..]),
    ] {
        let source = sources.iter().filter_map(|s| newest(&root.join(s))).max();
        if let (Some(source), Some(built)) = (source, built(bin))
            && source > built
        {
            stale.push(bin.display().to_string());
        }
    }
    stale
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(bins: &Bins, quick: bool, fd_limit: u64, load_before: &str, took: Duration) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory": mem,
        "kernel": kernel.trim(),
        "git": git,
        "profile": bins.profile_dir,
        "quick": quick,
        "fd_limit": fd_limit,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "took_s": took.as_secs_f64(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "binary_bytes": {"zend": size(&bins.zend), "zen-shim": size(&bins.shim), "floor_server": size(&bins.floor)},
        "statically_linked": {"zend": procs::statically_linked(&bins.zend), "zen-shim": procs::statically_linked(&bins.shim), "floor_server": procs::statically_linked(&bins.floor)},
    })
}
