//! `--callgrind`: user-space instructions per call, counted by valgrind's
//! callgrind. Unlike time, instruction counts do not move with the machine's
//! load, so they show what a change to zen costs even on a noisy machine. Each
//! program runs twice (few and many calls); the difference divided by the extra
//! calls is the cost of one call, start-up excluded. Kernel time (syscalls,
//! context switches) is not counted: see the `cpu` rows for that.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{Bins, Home, Mcp};

const FEW: usize = 100;
const MANY: usize = 1100;
const VERSION_CALL: &str = r#"{"name":"version","arguments":{}}"#;
/// Fewer chat calls: each is ~10× a `version` call under valgrind.
const CHAT_FEW: usize = 20;
const CHAT_MANY: usize = 220;

pub struct Counts {
    /// Instructions per `tools/call version`.
    pub shim: f64,
    pub zend: f64,
    pub zend_quiet: f64,
    pub floor: f64,
    /// Instructions per `tools/call chat` (new thread each) against the mock, zend's threads summed.
    pub zend_chat: f64,
    /// The same in the store section's mix: 9 calls in 10 continue a thread.
    pub zend_chat_mix: f64,
    /// Instructions from exec to the initialize answer (FEW-call run minus its calls).
    pub shim_start: f64,
    pub floor_start: f64,
    /// Raw totals (few, many) per program, for the JSON.
    pub raw: serde_json::Value,
}

pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn valgrind(home: &Home, out: &Path, flags: &[&str], program: &Path) -> Command {
    let mut command = home.command(Path::new("valgrind"));
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(flags)
        .arg(program);
    command
}

fn totals(out: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .next_back()
        .ok_or_else(|| format!("no totals in {}", out.display()))
}

/// One session of `n` calls of the tool in `params` through `client`, then closes it. With
/// `continue_threads`, 9 calls in 10 continue the thread the previous call answered on (the
/// store section's mix: a new thread every 10th call).
fn calls(mut client: Mcp, n: usize, params: &str, continue_threads: bool) -> Result<(), String> {
    client.initialize().map_err(|e| e.to_string())?;
    let mut continuation: Option<String> = None;
    for i in 0..n {
        let params = match (&continuation, continue_threads && i % 10 != 0) {
            (Some(id), true) => {
                let mut value: serde_json::Value =
                    serde_json::from_str(params).map_err(|e| e.to_string())?;
                value["arguments"]["continuation_id"] = serde_json::json!(id);
                value.to_string()
            }
            _ => params.to_owned(),
        };
        let reply = client
            .request("tools/call", Some(&params))
            .map_err(|e| e.to_string())?;
        if !reply.contains("\"result\"") || reply.contains("\"isError\":true") {
            return Err(format!(
                "a call under callgrind failed: {}",
                reply.chars().take(300).collect::<String>()
            ));
        }
        continuation = crate::procs::continuation_id(&reply);
    }
    client.close();
    Ok(())
}

/// Instructions of a client-side program (the shim or the floor server) for `n` calls.
fn client_side(home: &Home, dir: &Path, program: &Path, n: usize) -> Result<u64, String> {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    let out = dir.join(format!("{name}.{n}.out"));
    let client = Mcp::spawn(valgrind(home, &out, &[], program)).map_err(|e| e.to_string())?;
    calls(client, n, VERSION_CALL, false)?;
    totals(&out)
}

/// Threads of `pid` in creation order (what callgrind numbers 1, 2, ...), by name.
fn thread_names(pid: u32) -> Vec<String> {
    let mut tasks: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_string_lossy().parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, name.trim().to_owned()))
        })
        .collect();
    tasks.sort();
    tasks.into_iter().map(|(_, name)| name).collect()
}

/// What zend serves under callgrind: `version` calls, or `chat` against the mock.
#[derive(Clone, Copy)]
enum Served<'a> {
    Version { quiet: bool },
    Chat { base_url: &'a str, continued: bool },
}

/// Instructions of zend, run under callgrind, serving one session of `n`
/// calls: the sum over its threads.
fn daemon_side(bins: &Bins, dir: &Path, n: usize, served: Served) -> Result<u64, String> {
    let mut home = Home::new().map_err(|e| e.to_string())?;
    let (label, params, continued) = match served {
        Served::Version { quiet } => {
            if quiet {
                home.env.push(("ZEN_LOG".into(), "warn".into()));
            }
            (format!("version.{quiet}"), VERSION_CALL.to_owned(), false)
        }
        Served::Chat {
            base_url,
            continued,
        } => {
            home.env.push(("OPENAI_BASE_URL".into(), base_url.into()));
            home.env
                .push(("OPENAI_API_KEY".into(), crate::mock::API_KEY.into()));
            (
                format!("chat.{continued}"),
                serde_json::json!({"name": "chat", "arguments": {"prompt": "Say hi.", "model": crate::mock::CHAT_MODEL}})
                    .to_string(),
                continued,
            )
        }
    };
    let out = dir.join(format!("zend.{n}.{label}.out"));
    // Per-thread output files: <out>-01, <out>-02, ...
    let mut child = valgrind(&home, &out, &["--separate-threads=yes"], &bins.zend)
        .args(["serve", "--auto-started", "--idle-timeout", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(home.socket()).is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("zend under valgrind did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Mcp::spawn(home.command(&bins.shim)).map_err(|e| e.to_string());
    let served = client.and_then(|c| calls(c, n, &params, continued));
    let names = thread_names(child.id());
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("zend under valgrind did not stop".into());
            }
        }
    }
    served?;
    let mut total = 0;
    for i in 0..names.len() {
        let file = format!("{}-{:02}", out.display(), i + 1);
        total += totals(Path::new(&file))?;
    }
    Ok(total)
}

pub fn run(bins: &Bins, mock_url: &str) -> Result<Counts, String> {
    let dir = tempfile::Builder::new()
        .prefix("zcg")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let per_call = |few: u64, many: u64| many.saturating_sub(few) as f64 / (MANY - FEW) as f64;
    // The client-side programs talk to an ordinary zend.
    let home = Home::new().map_err(|e| e.to_string())?;
    home.start_daemon(bins).map_err(|e| e.to_string())?;
    let shim = (
        client_side(&home, dir.path(), &bins.shim, FEW)?,
        client_side(&home, dir.path(), &bins.shim, MANY)?,
    );
    let floor = (
        client_side(&home, dir.path(), &bins.floor, FEW)?,
        client_side(&home, dir.path(), &bins.floor, MANY)?,
    );
    home.stop_daemon();
    // zend's (few, many) runs for what it serves.
    let runs = |(few, many): (usize, usize), served: Served| -> Result<(u64, u64), String> {
        Ok((
            daemon_side(bins, dir.path(), few, served)?,
            daemon_side(bins, dir.path(), many, served)?,
        ))
    };
    let zend = runs((FEW, MANY), Served::Version { quiet: false })?;
    let zend_quiet = runs((FEW, MANY), Served::Version { quiet: true })?;
    let chat = |continued| Served::Chat {
        base_url: mock_url,
        continued,
    };
    let zend_chat = runs((CHAT_FEW, CHAT_MANY), chat(false))?;
    let zend_chat_mix = runs((CHAT_FEW, CHAT_MANY), chat(true))?;
    if let Some(keep) = std::env::var_os("ZEN_BENCH_KEEP_CALLGRIND") {
        // For callgrind_annotate: every output file, per thread.
        let keep = Path::new(&keep);
        let _ = std::fs::create_dir_all(keep);
        for entry in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::copy(entry.path(), keep.join(entry.file_name()));
        }
    }
    let shim_call = per_call(shim.0, shim.1);
    let floor_call = per_call(floor.0, floor.1);
    Ok(Counts {
        shim: shim_call,
        zend: per_call(zend.0, zend.1),
        zend_quiet: per_call(zend_quiet.0, zend_quiet.1),
        zend_chat: zend_chat.1.saturating_sub(zend_chat.0) as f64 / (CHAT_MANY - CHAT_FEW) as f64,
        zend_chat_mix: zend_chat_mix.1.saturating_sub(zend_chat_mix.0) as f64
            / (CHAT_MANY - CHAT_FEW) as f64,
        floor: floor_call,
        shim_start: shim.0 as f64 - FEW as f64 * shim_call,
        floor_start: floor.0 as f64 - FEW as f64 * floor_call,
        raw: serde_json::json!({
            "calls": [FEW, MANY],
            "shim": [shim.0, shim.1],
            "floor": [floor.0, floor.1],
            "zend": [zend.0, zend.1],
            "zend_log_warn": [zend_quiet.0, zend_quiet.1],
            "chat_calls": [CHAT_FEW, CHAT_MANY],
            "zend_chat": [zend_chat.0, zend_chat.1],
            "zend_chat_mix": [zend_chat_mix.0, zend_chat_mix.1],
        }),
    })
}
