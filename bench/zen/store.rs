//! Section "store" (issue #9 items 6 and 9): what the store costs as it grows.
//!
//! - In-process, through zend's own library on a store of 100k threads and 1M ledger records: a 50-turn
//!   thread's history, a durable turn append, a durable ledger record — each beside the same bytes read or
//!   written with raw redb (the floor: what any redb-backed design pays).
//! - Through the real binaries: `zend status` over 1M ledger records, beside `zend status` on an empty store;
//!   and zend's CPU per `chat` call (a new thread every 10th call, continuing it otherwise) with 0, 10k and
//!   100k threads stored, beside the 0-thread figure — the cost per call must stay flat.
//!
//! Seeding 100k threads and 1M records takes a while, so seeded stores are cached under
//! `<target>/bench-store/`, keyed by the store's schema version and a hash of the sources that define the
//! layout (`store.rs`, `memory/`, `ledger/`), and re-seeded after a day (threads expire after three).
//! Every run works on a fresh copy.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use zend::config::LimitsConfig;
use zend::data::Data;
use zend::ledger::{LedgerRecord, Outcome};
use zend::memory::history::{self, estimate_tokens, token_budget_for};
use zend::memory::{NewThread, NewTurn, ThreadFilter, ThreadId};
use zend::time::{Clock, SystemClock, Timestamp};

use crate::procs::{self, Bins, Home, Mcp};
use crate::report::{Report, Target, Unit};
use crate::stats::Summary;
use crate::{io, mock};

/// Threads in the big store, and ledger records.
pub struct Sizes {
    pub big_threads: usize,
    pub mid_threads: usize,
    pub records: usize,
    pub chat_warmup: usize,
    pub chat_calls: usize,
    pub samples: usize,
    pub status_runs: usize,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            big_threads: 100_000,
            mid_threads: 10_000,
            records: 1_000_000,
            chat_warmup: 300,
            chat_calls: 1000,
            samples: 300,
            status_runs: 20,
        }
    }

    pub fn quick() -> Self {
        Self {
            big_threads: 2_000,
            mid_threads: 200,
            records: 20_000,
            chat_warmup: 20,
            chat_calls: 40,
            samples: 30,
            status_runs: 3,
        }
    }
}

/// Turns in each of the long threads (the store's default cap is 50).
const LONG_TURNS: usize = 50;
const LONG_THREADS: usize = 10;
const SEED_CONCURRENCY: usize = 64;
const CACHE_MAX_AGE: Duration = Duration::from_secs(86_400);

pub fn run(
    bins: &Bins,
    sizes: &Sizes,
    mock: &mock::Mock,
    report: &mut Report,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cache = crate::target_dir(bins).join("bench-store");
    let big = seeded(&rt, &cache, sizes.big_threads, sizes.records)?;
    let mid = seeded(&rt, &cache, sizes.mid_threads, 0)?;

    in_process(&rt, &big, sizes, report)?;

    // Through the binaries: one daemon per store size, one after the other.
    let mut per_size = Vec::new();
    let mut status = Vec::new();
    for (threads, source) in [
        (0, None),
        (sizes.mid_threads, Some(&mid)),
        (sizes.big_threads, Some(&big)),
    ] {
        let mut home = Home::new().map_err(|e| e.to_string())?;
        home.env = vec![
            ("OPENAI_BASE_URL".into(), mock.base_url.clone()),
            ("OPENAI_API_KEY".into(), mock::API_KEY.into()),
        ];
        if let Some(source) = source {
            copy_dir(&source.join("data"), &home.path().join("data")).map_err(|e| e.to_string())?;
        }
        let (zend, _) = home.start_daemon(bins).map_err(|e| e.to_string())?;
        let outcome = (|| {
            let chat = chat_mix(bins, &home, zend, sizes.chat_warmup, sizes.chat_calls)?;
            println!(
                "  {threads:>6} threads stored: chat p50 {}, zend CPU {} per call ({} user, {} kernel)",
                Unit::Us.show(chat.latency.p50),
                Unit::Us.show(chat.cpu),
                Unit::Us.show(chat.user),
                Unit::Us.show(chat.kernel)
            );
            per_size.push((threads, chat));
            if threads == 0 || threads == sizes.big_threads {
                let s = status_runs(bins, &home, sizes.status_runs)?;
                println!(
                    "  {threads:>6} threads stored: zend status p50 {}",
                    Unit::Ms.show(s.p50)
                );
                status.push((threads, s));
            }
            Ok::<_, String>(())
        })();
        home.stop_daemon();
        outcome?;
    }

    let (_, floor) = &per_size[0];
    let (floor_latency, floor_cpu) = (&floor.latency, floor.cpu);
    for (threads, chat) in &per_size {
        let (latency, cpu) = (&chat.latency, &chat.cpu);
        let floor_name = "same, 0 threads stored";
        report.row(
            "store",
            format!("CPU per chat call: zend, {threads} threads stored"),
            *cpu,
            Unit::Us,
            Some((floor_cpu, floor_name)),
            Target::AtMost(0.3e-3),
            "",
        );
        report.row(
            "store",
            format!("chat call p50, {threads} threads stored"),
            latency.p50,
            Unit::Us,
            Some((floor_latency.p50, floor_name)),
            Target::None,
            "",
        );
    }
    if let [(_, empty), (_, full)] = status.as_slice() {
        report.row(
            "store",
            format!("zend status over {} ledger records (p50)", sizes.records),
            full.p50,
            Unit::Ms,
            Some((empty.p50, "zend status, empty store")),
            Target::AtMost(0.05),
            "",
        );
    }
    report.detail(
        "store",
        json!({
            "chat_by_threads": per_size.iter().map(|(n, c)| json!({
                "threads": n, "latency": c.latency.json(), "zend_cpu_per_call_s": c.cpu,
                "zend_user_per_call_s": c.user, "zend_kernel_per_call_s": c.kernel,
            })).collect::<Vec<Value>>(),
            "status": status.iter().map(|(n, s)| json!({"threads": n, "latency": s.json()})).collect::<Vec<Value>>(),
        }),
    );
    Ok(())
}

/// `chat` calls on one session: a new thread every 10th call, continued otherwise.
/// Returns the latencies and zend's CPU per call.
/// `warmup` calls first, unmeasured: a daemon just started on a big store pages in the index
/// nodes its first calls touch (with 20 warm-up calls and 400 measured, that one-time cost showed
/// as +45 µs per call at 100k threads; after 300 it is gone at every size).
fn chat_mix(
    bins: &Bins,
    home: &Home,
    zend: u32,
    warmup: usize,
    calls: usize,
) -> Result<ChatFigures, String> {
    let mut shim = crate::shim_session(bins, home)?;
    let mut continuation: Option<String> = None;
    let mut call = |shim: &mut Mcp, i: usize| -> Result<Duration, String> {
        if i.is_multiple_of(10) {
            continuation = None;
        }
        let mut arguments =
            json!({"prompt": format!("Question {i}: say hi."), "model": mock::CHAT_MODEL});
        if let Some(id) = &continuation {
            arguments["continuation_id"] = json!(id);
        }
        let params = json!({"name": "chat", "arguments": arguments}).to_string();
        let (line, took) = io(shim.request_timed("tools/call", Some(&params)))?;
        let reply: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let text = reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        if reply.get("result").is_none() || reply["result"]["isError"] == true {
            return Err(format!(
                "chat failed: {}",
                line.chars().take(300).collect::<String>()
            ));
        }
        continuation = procs::continuation_id(text);
        Ok(took)
    };
    let warmup = warmup.min(calls);
    for i in 0..warmup {
        call(&mut shim, i)?;
    }
    let before = procs::cpu_ns(zend).unwrap_or(0);
    let ticks_before = user_sys_ns(zend).unwrap_or_default();
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        samples.push(call(&mut shim, warmup + i)?);
    }
    let cpu = procs::cpu_ns(zend).unwrap_or(0).saturating_sub(before) as f64 / 1e9 / calls as f64;
    let ticks = user_sys_ns(zend).unwrap_or_default();
    let per_call =
        |after: u64, before: u64| after.saturating_sub(before) as f64 / 1e9 / calls as f64;
    shim.close();
    Ok(ChatFigures {
        latency: Summary::of(&samples),
        cpu,
        user: per_call(ticks.0, ticks_before.0),
        kernel: per_call(ticks.1, ticks_before.1),
    })
}

struct ChatFigures {
    latency: Summary,
    /// zend's CPU per call (scheduler run time), and its user/kernel split (clock ticks).
    cpu: f64,
    user: f64,
    kernel: f64,
}

/// utime and stime of a whole process, in ns (clock-tick resolution).
fn user_sys_ns(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime * 1_000_000_000 / hz, stime * 1_000_000_000 / hz))
}

fn status_runs(bins: &Bins, home: &Home, runs: usize) -> Result<Summary, String> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs + 1 {
        let started = Instant::now();
        let out = home
            .command(&bins.zend)
            .arg("status")
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "zend status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        samples.push(started.elapsed());
    }
    samples.remove(0);
    Ok(Summary::of(&samples))
}

/// The library figures on a copy of the big store, and their raw-redb floors.
fn in_process(
    rt: &tokio::runtime::Runtime,
    big: &Path,
    sizes: &Sizes,
    report: &mut Report,
) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("zb-store")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let data = work.path().join("data");
    copy_dir(&big.join("data"), &data).map_err(|e| e.to_string())?;
    let long: Vec<ThreadId> = std::fs::read_to_string(big.join("long-threads"))
        .map_err(|e| e.to_string())?
        .lines()
        .map(|l| l.parse().map_err(|e| format!("{e:?}")))
        .collect::<Result<_, String>>()?;
    let n = sizes.samples;
    let text = paragraph();

    let (open_t, list_s, history_s, append_s, record_s, (append_cpu, record_cpu)) =
        rt.block_on(async {
            let started = Instant::now();
            let store = open(&data).map_err(|e| e.to_string())?;
            let open_t = started.elapsed();
            let threads = store.threads();
            let mut list_s = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                let listed = threads
                    .list(&ThreadFilter::default())
                    .map_err(|e| e.to_string())?;
                std::hint::black_box(listed.len());
                list_s.push(started.elapsed());
            }
            let (budget, _) = token_budget_for(200_000);
            let mut history_s = Vec::with_capacity(n);
            for i in 0..n {
                let started = Instant::now();
                let thread = threads
                    .get(&long[i % long.len()])
                    .map_err(|e| e.to_string())?;
                let built = history::build(&thread, budget, estimate_tokens);
                std::hint::black_box(built.included_turns);
                history_s.push(started.elapsed());
            }
            // Appends go to short threads (the long ones are at their cap).
            let mut append_s = Vec::with_capacity(n);
            let cpu_before = self_cpu();
            let mut id = None;
            for i in 0..n {
                if i.is_multiple_of(20) {
                    id = Some(
                        threads
                            .create(new_thread(i, &text))
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                let Some(id) = &id else { unreachable!() };
                let started = Instant::now();
                threads
                    .append(id, NewTurn::user("chat", &text))
                    .await
                    .map_err(|e| e.to_string())?;
                append_s.push(started.elapsed());
            }
            let append_cpu = (self_cpu() - cpu_before) / n as f64;
            let ledger = store.ledger();
            let cpu_before = self_cpu();
            let mut record_s = Vec::with_capacity(n);
            for i in 0..n {
                let started = Instant::now();
                ledger
                    .record(record(i, SystemClock.now()))
                    .await
                    .map_err(|e| e.to_string())?;
                record_s.push(started.elapsed());
            }
            let record_cpu = (self_cpu() - cpu_before) / n as f64;
            store.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((
                open_t,
                list_s,
                history_s,
                append_s,
                record_s,
                (append_cpu, record_cpu),
            ))
        })?;

    // The floors: the same bytes through raw redb, on the same store (closed by zend's library above).
    let (raw_open, raw_read, raw_write, raw_write_cpu) = rt.block_on(async {
        use redb::{ReadableDatabase, TableDefinition};
        type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;
        let e = |e: redb::Error| e.to_string();
        let started = Instant::now();
        let db = redb::Database::builder()
            .set_cache_size(4 * 1024 * 1024)
            .create(data.join("store.redb"))
            .map_err(|x| e(x.into()))?;
        let raw_open = started.elapsed();
        let summaries_def: Table = TableDefinition::new("threads");
        let turns_def: Table = TableDefinition::new("turns");
        let mut raw_read = Vec::with_capacity(n);
        for i in 0..n {
            let key = *long[i % long.len()].as_uuid().as_bytes();
            let started = Instant::now();
            let tx = db.begin_read().map_err(|x| e(x.into()))?;
            let summaries = tx.open_table(summaries_def).map_err(|x| e(x.into()))?;
            let turns = tx.open_table(turns_def).map_err(|x| e(x.into()))?;
            let mut bytes = summaries
                .get(&key[..])
                .map_err(|x| e(x.into()))?
                .map_or(0, |v| v.value().len());
            // Past every turn key of the thread (id + 4-byte index).
            let mut end = key.to_vec();
            end.extend_from_slice(&[0xff; 5]);
            for kv in turns
                .range::<&[u8]>(&key[..]..&end[..])
                .map_err(|x| e(x.into()))?
            {
                bytes += kv.map_err(|x| e(x.into()))?.1.value().len();
            }
            std::hint::black_box(bytes);
            raw_read.push(started.elapsed());
        }
        let scratch: Table = TableDefinition::new("bench_floor");
        let value = serde_json::to_vec(&json!({"role": "user", "tool": "chat", "text": text}))
            .map_err(|e| e.to_string())?;
        let mut raw_write = Vec::with_capacity(n);
        let cpu_before = self_cpu();
        for i in 0..n {
            let started = Instant::now();
            let tx = db.begin_write().map_err(|x| e(x.into()))?;
            tx.open_table(scratch)
                .map_err(|x| e(x.into()))?
                .insert(&(i as u64).to_be_bytes()[..], value.as_slice())
                .map_err(|x| e(x.into()))?;
            tx.commit().map_err(|x| e(x.into()))?;
            raw_write.push(started.elapsed());
        }
        let raw_write_cpu = (self_cpu() - cpu_before) / n as f64;
        let tx = db.begin_write().map_err(|x| e(x.into()))?;
        tx.delete_table(scratch).map_err(|x| e(x.into()))?;
        tx.commit().map_err(|x| e(x.into()))?;
        Ok::<_, String>((
            raw_open,
            Summary::of(&raw_read),
            Summary::of(&raw_write),
            raw_write_cpu,
        ))
    })?;
    // The durability floor: the same bytes written to a preallocated file and fdatasynced, what
    // zend's write-ahead log does per durable write (at best: zend's record also carries the keys).
    let (raw_sync, raw_sync_cpu) = {
        use std::os::unix::fs::FileExt;
        let value = serde_json::to_vec(&json!({"role": "user", "tool": "chat", "text": text}))
            .map_err(|e| e.to_string())?;
        let path = data.join("bench_floor.log");
        let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        let zeros = vec![0_u8; value.len() * n + 4096];
        file.write_all_at(&zeros, 0).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(n);
        let cpu_before = self_cpu();
        for i in 0..n {
            let started = Instant::now();
            file.write_all_at(&value, (i * value.len()) as u64)
                .map_err(|e| e.to_string())?;
            file.sync_data().map_err(|e| e.to_string())?;
            times.push(started.elapsed());
        }
        let cpu = (self_cpu() - cpu_before) / n as f64;
        drop(file);
        let _ = std::fs::remove_file(&path);
        (Summary::of(&times), cpu)
    };

    let history = Summary::of(&history_s);
    let append = Summary::of(&append_s);
    let record = Summary::of(&record_s);
    let among = format!(
        "{} threads, {} ledger records",
        sizes.big_threads, sizes.records
    );
    println!(
        "  among {among}: history p50 {} (raw {}), append p50 {}, record p50 {} (raw write+flush {})",
        Unit::Us.show(history.p50),
        Unit::Us.show(raw_read.p50),
        Unit::Us.show(append.p50),
        Unit::Us.show(record.p50),
        Unit::Us.show(raw_write.p50),
    );
    let list = Summary::of(&list_s);
    report.row(
        "store",
        format!("open the store ({among})"),
        open_t.as_secs_f64(),
        Unit::Ms,
        Some((raw_open.as_secs_f64(), "raw redb open of the same file")),
        Target::AtMost(1.0),
        "",
    );
    report.row(
        "store",
        "list the 20 most recent threads (p50)",
        list.p50,
        Unit::Us,
        Some((raw_read.p50, "raw redb read of a 50-turn thread")),
        Target::None,
        "",
    );
    report.row(
        "store",
        format!("history of a {LONG_TURNS}-turn thread among {among} (p50)"),
        history.p50,
        Unit::Us,
        Some((raw_read.p50, "raw redb read of the same keys")),
        Target::AtMost(1e-3),
        "",
    );
    report.row(
        "store",
        "append a turn, durable (p50)",
        append.p50,
        Unit::Us,
        Some((raw_sync.p50, "pwrite + fdatasync of the same bytes")),
        Target::None,
        "",
    );
    report.row(
        "store",
        "record a ledger entry, durable (p50; its aggregates in the same commit)",
        record.p50,
        Unit::Us,
        Some((raw_sync.p50, "pwrite + fdatasync of a turn's bytes")),
        Target::None,
        "",
    );
    report.row(
        "store",
        "raw redb insert + durable commit (p50; what a transaction per write would cost)",
        raw_write.p50,
        Unit::Us,
        Some((raw_sync.p50, "pwrite + fdatasync of the same bytes")),
        Target::None,
        "",
    );
    for (what, cpu) in [
        (
            "CPU per durable turn append (bench process, all threads)",
            append_cpu,
        ),
        (
            "CPU per durable ledger record (bench process, all threads)",
            record_cpu,
        ),
    ] {
        report.row(
            "store",
            what,
            cpu,
            Unit::Us,
            Some((raw_sync_cpu, "CPU per pwrite + fdatasync of a turn's bytes")),
            Target::None,
            "",
        );
    }
    report.detail(
        "store_in_process",
        json!({
            "threads": sizes.big_threads, "records": sizes.records,
            "open_s": open_t.as_secs_f64(), "raw_open_s": raw_open.as_secs_f64(), "list": list.json(),
            "history": history.json(), "raw_read": raw_read.json(),
            "append": append.json(), "record": record.json(), "raw_write_flush": raw_write.json(),
            "cpu_per_op_s": {"append": append_cpu, "record": record_cpu, "raw_write_flush": raw_write_cpu, "raw_pwrite_fdatasync": raw_sync_cpu},
            "raw_pwrite_fdatasync": raw_sync.json(),
        }),
    );
    Ok(())
}

/// A cached seeded store (`<dir>/data/store`) with `threads` threads (10 of them 50 turns long, the rest
/// two turns) and `records` ledger records; `<dir>/long-threads` lists the long ones.
fn seeded(
    rt: &tokio::runtime::Runtime,
    cache: &Path,
    threads: usize,
    records: usize,
) -> Result<PathBuf, String> {
    let dir = cache.join(format!(
        "v{}-{:016x}-{threads}t-{records}r",
        zend::store::SCHEMA_VERSION,
        layout_hash()
    ));
    let done = dir.join("complete");
    let fresh = std::fs::metadata(&done)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age < CACHE_MAX_AGE)
        });
    if fresh {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    print!("  seeding a store: {threads} threads, {records} ledger records … ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let long = rt.block_on(async {
        let store = open(&dir.join("data")).map_err(|e| e.to_string())?;
        let long = fill_threads(&store, threads).await?;
        fill_ledger(&store, records).await?;
        store.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(long)
    })?;
    // A reopen after the close above, so the seeded file is as a restarted zend finds it.
    rt.block_on(async {
        let store = open(&dir.join("data")).map_err(|e| e.to_string())?;
        store.flush().await.map_err(|e| e.to_string())
    })?;
    println!("{:.1} s", started.elapsed().as_secs_f64());
    let ids: Vec<String> = long.iter().map(ToString::to_string).collect();
    std::fs::write(dir.join("long-threads"), ids.join("\n")).map_err(|e| e.to_string())?;
    std::fs::write(&done, b"").map_err(|e| e.to_string())?;
    Ok(dir)
}

/// CPU time of this whole process so far, in seconds.
fn self_cpu() -> f64 {
    procs::cpu_ns(std::process::id()).unwrap_or(0) as f64 / 1e9
}

fn open(data_dir: &Path) -> Result<Data, zend::store::StoreError> {
    Data::open(data_dir, &LimitsConfig::default())
}

/// A hash of the sources that define the store's layout: a cached store from other sources is not reused.
fn layout_hash() -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src");
    let mut files = vec![root.join("store.rs")];
    for sub in ["memory", "ledger", "store"] {
        if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
            files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn paragraph() -> String {
    "A paragraph of a realistic prompt or answer. ".repeat(10)
}

fn new_thread(n: usize, text: &str) -> NewThread {
    NewThread {
        tool: "chat".into(),
        session_id: format!("session-{}", n % 50),
        client: "claude-code".into(),
        cwd: Some(format!("/home/u/src/project-{}", n % 20)),
        parent: None,
        first_prompt: format!("Question {n}\n{text}"),
    }
}

async fn fill_threads(store: &Data, count: usize) -> Result<Vec<ThreadId>, String> {
    let text = paragraph();
    let mut tasks = Vec::new();
    for worker in 0..SEED_CONCURRENCY {
        let threads = store.threads().clone();
        let text = text.clone();
        tasks.push(tokio::spawn(async move {
            let mut long = Vec::new();
            for n in (worker..count).step_by(SEED_CONCURRENCY) {
                let id = threads
                    .create(new_thread(n, &text))
                    .await
                    .map_err(|e| e.to_string())?;
                let exchanges = if n < LONG_THREADS { LONG_TURNS / 2 } else { 1 };
                for _ in 0..exchanges {
                    threads
                        .append(&id, NewTurn::user("chat", &text).with_files(["src/lib.rs"]))
                        .await
                        .map_err(|e| e.to_string())?;
                    threads
                        .append(&id, NewTurn::assistant("chat", "gpt-5", "openai", &text))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if n < LONG_THREADS {
                    long.push(id);
                }
            }
            Ok::<_, String>(long)
        }));
    }
    let mut long = Vec::new();
    for task in tasks {
        long.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(long)
}

async fn fill_ledger(store: &Data, count: usize) -> Result<(), String> {
    let now = SystemClock.now().as_millis();
    let batch = 10_000;
    for start in (0..count).step_by(batch) {
        let records: Vec<_> = (start..(start + batch).min(count))
            .map(|i| {
                // Spread over the last 90 days.
                let time = now - (i as u64 * 7_777) % (90 * 86_400_000);
                record(i, Timestamp::from_millis(time))
            })
            .collect();
        store
            .ledger()
            .record_batch(&records)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn record(i: usize, time: Timestamp) -> LedgerRecord {
    let models = [
        "gpt-5",
        "o3",
        "gemini-2.5-pro",
        "claude-sonnet-4",
        "llama3:70b",
    ];
    let tools = [
        "chat",
        "thinkdeep",
        "codereview",
        "debug",
        "precommit",
        "consensus",
    ];
    LedgerRecord {
        time,
        model: models[i % models.len()].into(),
        provider: "openai".into(),
        tool: tools[i % tools.len()].into(),
        thread: None,
        session_id: Some(format!("session-{}", i % 50)),
        client: Some(["claude-code", "codex", "cursor"][i % 3].into()),
        project: Some(format!("/home/u/src/project-{}", i % 20)),
        input_tokens: 2_000 + (i as u64 % 5_000),
        output_tokens: 500,
        cached_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cache_saved_usd: 0.0,
        cost_usd: (i % 5 != 4).then_some(0.002),
        latency_ms: 300 + (i as u64 * 37) % 20_000,
        outcome: if i.is_multiple_of(50) {
            Outcome::Error {
                kind: "rate_limited".into(),
            }
        } else {
            Outcome::Ok
        },
    }
}

/// Copies a store and fsyncs every file: an open timed right after the copy must not pay the
/// copy's own writeback (an open that syncs its files would write out the whole just-copied store).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}
