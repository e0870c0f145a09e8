//! Measures the store against the targets in the memory/ledger issue:
//! a 50-turn thread's history among 100k threads (≤ 1 ms p50), a durable
//! append (p50), opening a store of 100k threads (≤ 1 s), ledger totals over
//! 1M records (≤ 50 ms).
//!
//! `cargo run --release -p zend --example store_bench -- [DIR] [THREADS] [RECORDS]`
//! fills DIR (default: a temporary directory) once; later runs on the same
//! DIR reuse the data and only measure.
//!
//! sled 0.34 writes its snapshot only when it opens, replaying the log since
//! the previous open: the first open after a fill replays the whole fill, so
//! "open store" is only representative on the second run over the same DIR.
#![allow(clippy::print_stdout, reason = "a benchmark prints its numbers")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zend::ledger::{LedgerRecord, LimitsConfig, Outcome};
use zend::memory::history::{self, estimate_tokens, token_budget_for};
use zend::memory::{NewThread, NewTurn, ThreadFilter, ThreadId};
use zend::store::{Clock, Store, StoreOptions, SystemClock};

const CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let temp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let thread_count: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let record_count: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let mut limits = LimitsConfig::default();
    limits.threads.max_turns = 1_000;
    // Caps high enough never to refuse, so budget checks read the aggregates.
    limits.budgets.daily_usd = Some(1e9);
    limits.budgets.monthly_usd = Some(1e9);
    limits.budgets.per_model.insert(
        "gpt-5".into(),
        zend::ledger::ModelBudget {
            daily_usd: Some(1e9),
            monthly_usd: Some(1e9),
        },
    );
    let options = StoreOptions {
        limits,
        clock: Arc::new(SystemClock),
    };
    let ids_file = dir.join("bench-long-threads");

    if !ids_file.exists() {
        std::fs::create_dir_all(&dir)?;
        let store = Store::open_with(&dir, options.clone())?;
        let started = Instant::now();
        let long = fill_threads(&store, thread_count).await?;
        println!(
            "fill: {thread_count} threads (2 turns each, 10 of them 50 turns) in {:.1?}",
            started.elapsed()
        );
        let started = Instant::now();
        fill_ledger(&store, record_count).await?;
        println!(
            "fill: {record_count} ledger records in {:.1?}",
            started.elapsed()
        );
        store.flush().await?;
        std::fs::write(
            &ids_file,
            long.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )?;
        println!(
            "store size on disk: {} MB",
            store.size_on_disk()? / 1_000_000
        );
    }
    let long: Vec<ThreadId> = std::fs::read_to_string(&ids_file)?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;

    let started = Instant::now();
    let store = Store::open_with(&dir, options)?;
    println!(
        "open store:                      {:>10.3?}",
        started.elapsed()
    );

    let threads = store.threads();
    let (input_budget, _) = token_budget_for(200_000);
    let samples = measure(500, |i| {
        let thread = threads.get(&long[i % long.len()]).ok()?;
        let history = history::build(&thread, input_budget, estimate_tokens);
        Some(history.included_turns)
    });
    report("get + history of 50-turn thread", &samples);

    let samples = measure(200, |_| threads.list(&ThreadFilter::default()).ok());
    report("list 20 most recent threads", &samples);

    let mut append_samples = Vec::new();
    for i in 0..200 {
        let id = long[i % long.len()];
        let started = Instant::now();
        threads
            .append(
                &id,
                NewTurn::user("chat", "one more question about the design"),
            )
            .await?;
        append_samples.push(started.elapsed());
    }
    report("append turn (durable, flushed)", &append_samples);

    let ledger = store.ledger();
    let now = SystemClock.now();
    let samples = measure(200, |_| ledger.totals(now).ok());
    report("ledger totals", &samples);
    let samples = measure(200, |_| ledger.check_budget("gpt-5", now).ok());
    report("budget check", &samples);

    let mut record_samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        ledger.record(record(0, now)).await?;
        record_samples.push(started.elapsed());
    }
    report("ledger record (durable, flushed)", &record_samples);

    let started = Instant::now();
    let removed = tokio::task::spawn_blocking({
        let threads = threads.clone();
        move || threads.sweep_expired()
    })
    .await??;
    println!(
        "sweep (nothing expired):          {:>10.3?} ({removed} removed)",
        started.elapsed()
    );
    Ok(())
}

async fn fill_threads(store: &Store, count: usize) -> anyhow::Result<Vec<ThreadId>> {
    let text = "A paragraph of a realistic prompt or answer. ".repeat(10);
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let threads = store.threads().clone();
        let text = text.clone();
        tasks.push(tokio::spawn(async move {
            let mut long = Vec::new();
            for n in (worker..count).step_by(CONCURRENCY) {
                let id = threads
                    .create(NewThread {
                        tool: "chat".into(),
                        session_id: format!("session-{}", n % 50),
                        client: "claude-code".into(),
                        cwd: Some(format!("/home/u/src/project-{}", n % 20)),
                        parent: None,
                        first_prompt: format!("Question {n}\n{text}"),
                    })
                    .await?;
                let turns = if n < 10 { 25 } else { 1 };
                for _ in 0..turns {
                    threads
                        .append(&id, NewTurn::user("chat", &text).with_files(["src/lib.rs"]))
                        .await?;
                    threads
                        .append(&id, NewTurn::assistant("chat", "gpt-5", "openai", &text))
                        .await?;
                }
                if n < 10 {
                    long.push(id);
                }
            }
            anyhow::Ok(long)
        }));
    }
    let mut long = Vec::new();
    for task in tasks {
        long.extend(task.await??);
    }
    Ok(long)
}

async fn fill_ledger(store: &Store, count: usize) -> anyhow::Result<()> {
    let now = SystemClock.now().as_millis();
    let batch: usize = 10_000;
    for start in (0..count).step_by(batch) {
        let records: Vec<_> = (start..(start + batch).min(count))
            .map(|i| {
                // Spread over the last 90 days.
                let time = now - (i as u64 * 7_777) % (90 * 86_400_000);
                record(i, zend::store::Timestamp::from_millis(time))
            })
            .collect();
        store.ledger().record_batch(&records).await?;
    }
    Ok(())
}

fn record(i: usize, time: zend::store::Timestamp) -> LedgerRecord {
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
        input_tokens: 2_000 + (i as u64 % 5_000),
        output_tokens: 500,
        cached_tokens: 0,
        reasoning_tokens: 0,
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

fn measure<T>(iterations: usize, mut f: impl FnMut(usize) -> Option<T>) -> Vec<Duration> {
    (0..iterations)
        .map(|i| {
            let started = Instant::now();
            let result = f(i);
            let elapsed = started.elapsed();
            assert!(result.is_some(), "operation failed");
            elapsed
        })
        .collect()
}

fn report(name: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<32} p50 {:>10.3?}  p90 {:>10.3?}  p99 {:>10.3?}",
        at(0.5),
        at(0.9),
        at(0.99)
    );
}
