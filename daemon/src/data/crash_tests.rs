//! Crash images, the way ALICE and CrashMonkey build them: a workload of
//! concurrent thread appends, ledger records, sweeps, a clean close and a
//! crash-and-restart runs on a redb backend that records every write and
//! sync. From the record, images are built of what a disk could hold after a
//! power loss: everything up to a sync, plus any subset of the writes issued
//! after it, some with torn 4 KiB pages. Every image must open (or be refused
//! with an error, never a panic), hold every turn and ledger record whose
//! write was answered before the sync it was cut at, and have ledger totals
//! equal to its records.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redb::StorageBackend;

use super::Data;
use crate::config::LimitsConfig;
use crate::ledger::{LedgerRecord, Outcome};
use crate::memory::{NewThread, NewTurn, ThreadId, ThreadTarget};
use crate::store::Store;
use crate::store::test_support::MemBackend;
use crate::time::{Clock, ManualClock, Timestamp};

const PAGE: usize = 4096;
const SECTOR: usize = 512;
/// Images checked at most: keeps the test to a few seconds.
const MAX_IMAGES: usize = 160;
const APPENDERS: usize = 4;
const ROUNDS: usize = 3;

#[derive(Debug, Clone)]
enum Event {
    Write {
        offset: usize,
        data: Vec<u8>,
    },
    SetLen(usize),
    Sync,
    /// The disk after a simulated crash, from which the workload restarted.
    Restart(Vec<u8>),
}

#[derive(Debug, Default)]
struct Disk {
    bytes: Vec<u8>,
    events: Vec<Event>,
    /// Writes of a database that "lost power" go nowhere.
    dead: bool,
}

/// A backend that applies and records every write, length change and sync.
#[derive(Debug, Clone, Default)]
struct Recording(Arc<Mutex<Disk>>);

impl Recording {
    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events so far: a write answered now is durable within them.
    fn position(&self) -> usize {
        self.disk().events.len()
    }
}

impl StorageBackend for Recording {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.disk().bytes.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let disk = self.disk();
        let start = offset as usize;
        let source = disk
            .bytes
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut disk = self.disk();
        if !disk.dead {
            disk.bytes.resize(len as usize, 0);
            disk.events.push(Event::SetLen(len as usize));
        }
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut disk = self.disk();
        if !disk.dead {
            disk.events.push(Event::Sync);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut disk = self.disk();
        if !disk.dead {
            apply_write(&mut disk.bytes, offset as usize, data);
            disk.events.push(Event::Write {
                offset: offset as usize,
                data: data.to_vec(),
            });
        }
        Ok(())
    }
}

fn apply_write(bytes: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if bytes.len() < offset + data.len() {
        bytes.resize(offset + data.len(), 0);
    }
    bytes[offset..offset + data.len()].copy_from_slice(data);
}

/// What a client was told is saved, and when (an event position).
#[derive(Debug, Clone)]
enum Acked {
    Turn { thread: ThreadId, text: String },
    Record { marker: u64 },
}

#[derive(Default)]
struct Acks(Mutex<Vec<(usize, Acked)>>);

impl Acks {
    fn push(&self, backend: &Recording, acked: Acked) {
        let position = backend.position();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((position, acked));
    }
}

fn limits() -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    limits.threads.ttl_hours = 3;
    limits.threads.max_turns = 10_000;
    limits
}

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2025-03-10T12:00:00Z").unwrap_or(Timestamp::EPOCH)
}

fn record(marker: u64, now: Timestamp) -> LedgerRecord {
    LedgerRecord {
        time: now,
        model: ["gpt-5", "o3"][marker as usize % 2].into(),
        provider: "openai".into(),
        tool: "chat".into(),
        thread: None,
        session_id: Some("s".into()),
        client: Some("claude-code".into()),
        project: None,
        input_tokens: marker,
        output_tokens: 10,
        cached_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_usd: Some(0.001 * (marker % 7) as f64),
        cache_saved_usd: 0.0,
        latency_ms: 100 + marker,
        outcome: Outcome::Ok,
    }
}

fn new_thread(text: &str) -> NewThread {
    NewThread {
        tool: "chat".into(),
        session_id: "s".into(),
        client: "claude-code".into(),
        cwd: None,
        parent: None,
        first_prompt: text.into(),
    }
}

fn open(backend: &Recording, clock: &Arc<ManualClock>) -> Data {
    let store = Store::open_backend(backend.clone(), Path::new("recorded")).unwrap();
    Data::on(store, &limits(), clock.clone()).unwrap()
}

/// The workload: rounds of concurrent appends, records and a sweep; a clean
/// close after the first round, a simulated crash after the second.
fn run_workload(backend: &Recording, acks: &Arc<Acks>) -> Vec<ThreadId> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    runtime.block_on(async {
        let mut data = open(backend, &clock);
        let mut kept = Vec::new();
        for i in 0..APPENDERS {
            let id = data
                .threads()
                .create(new_thread(&format!("kept {i}")))
                .await
                .unwrap();
            kept.push(id);
        }
        let mut marker = 0_u64;
        for round in 0..ROUNDS {
            // Two hours on: doomed threads of two rounds ago expire.
            clock.advance(Duration::from_secs(2 * 3600));
            let mut tasks = Vec::new();
            for (i, id) in kept.iter().copied().enumerate() {
                let (threads, acks, backend) =
                    (data.threads().clone(), acks.clone(), backend.clone());
                let both = data.clone();
                let base = marker + 500 + i as u64 * 10;
                let now = clock.now();
                tasks.push(tokio::spawn(async move {
                    for n in 0..6 {
                        let text = format!("r{round} a{i} n{n}");
                        if n % 2 == 0 {
                            threads
                                .append(&id, NewTurn::user("chat", &text))
                                .await
                                .unwrap();
                        } else {
                            let exchange = vec![
                                NewTurn::user("chat", &text),
                                NewTurn::assistant(
                                    "chat",
                                    "gpt-5",
                                    "openai",
                                    format!("{text} answer"),
                                ),
                            ];
                            // A model call's exchange: its ledger record
                            // and both turns in one transaction.
                            let marker = base + n;
                            let staged = both.ledger().stage(&[record(marker, now)]).unwrap();
                            both.write_exchange(
                                staged,
                                threads.stage_turns(ThreadTarget::Existing(id), exchange),
                            )
                            .await
                            .unwrap();
                            acks.push(&backend, Acked::Record { marker });
                        }
                        acks.push(&backend, Acked::Turn { thread: id, text });
                        // A doomed thread, swept two rounds later.
                        threads
                            .write_turns(
                                ThreadTarget::New(new_thread("doomed")),
                                vec![NewTurn::user("chat", "doomed")],
                            )
                            .await
                            .unwrap();
                    }
                }));
            }
            for task in 0..2 {
                let (ledger, acks, backend) =
                    (data.ledger().clone(), acks.clone(), backend.clone());
                let first = marker + task * 100;
                let now = clock.now();
                tasks.push(tokio::spawn(async move {
                    for n in 0..8 {
                        let marker = first + n * 2;
                        ledger
                            .record_batch(&[record(marker, now), record(marker + 1, now)])
                            .await
                            .unwrap();
                        acks.push(&backend, Acked::Record { marker });
                        acks.push(&backend, Acked::Record { marker: marker + 1 });
                    }
                }));
            }
            marker += 1000;
            let threads = data.threads().clone();
            tasks.push(tokio::spawn(async move {
                threads.sweep_expired().await.unwrap();
            }));
            for task in tasks {
                task.await.unwrap();
            }
            match round {
                0 => {
                    data.close().await.unwrap();
                    drop(data);
                    data = open(backend, &clock);
                }
                1 => {
                    // Power loss: the disk keeps what was synced; the old
                    // database's last writes (its close) go nowhere.
                    backend.disk().dead = true;
                    drop(data);
                    let mut disk = backend.disk();
                    let image = disk.bytes.clone();
                    disk.events.push(Event::Restart(image));
                    disk.dead = false;
                    drop(disk);
                    data = open(backend, &clock);
                }
                _ => {}
            }
        }
        data.close().await.unwrap();
        kept
    })
}

/// The images: at each sampled sync, the disk as synced, then that plus
/// random subsets of the writes before the next sync, some torn.
fn images(events: &[Event], rng: &mut fastrand::Rng) -> Vec<(usize, Vec<u8>)> {
    let syncs: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i], Event::Sync))
        .collect();
    let per_sync = 3;
    let stride = (syncs.len() * per_sync).div_ceil(MAX_IMAGES).max(1);
    let mut bytes = Vec::new();
    let mut images = Vec::new();
    let mut applied = 0;
    for (n, &sync) in syncs.iter().enumerate() {
        while applied <= sync {
            match &events[applied] {
                Event::Write { offset, data } => apply_write(&mut bytes, *offset, data),
                Event::SetLen(len) => bytes.resize(*len, 0),
                Event::Restart(image) => bytes.clone_from(image),
                Event::Sync => {}
            }
            applied += 1;
        }
        if n % stride != 0 {
            continue;
        }
        let next = syncs.get(n + 1).copied().unwrap_or(events.len());
        let after = &events[sync + 1..next];
        images.push((sync + 1, bytes.clone()));
        if after.iter().any(|e| matches!(e, Event::Restart(_))) {
            continue;
        }
        for _ in 1..per_sync {
            let mut image = bytes.clone();
            for event in after {
                match event {
                    Event::SetLen(len) => image.resize(*len, 0),
                    Event::Write { offset, data } if rng.bool() => {
                        torn_write(&mut image, *offset, data, rng);
                    }
                    _ => {}
                }
            }
            images.push((sync + 1, image));
        }
    }
    images
}

/// Some of a write's 4 KiB pages, and of one of them only its first sectors.
fn torn_write(image: &mut Vec<u8>, offset: usize, data: &[u8], rng: &mut fastrand::Rng) {
    let pages: Vec<usize> = (0..data.len()).step_by(PAGE).collect();
    let torn = rng.usize(..pages.len());
    for (n, &start) in pages.iter().enumerate() {
        let end = (start + PAGE).min(data.len());
        if n == torn {
            let sectors = rng.usize(0..=(end - start).div_ceil(SECTOR));
            let cut = (start + sectors * SECTOR).min(end);
            apply_write(image, offset + start, &data[start..cut]);
        } else if rng.bool() {
            apply_write(image, offset + start, &data[start..end]);
        }
    }
}

/// Opens one image and checks it; `Err` describes a violation.
fn check_image(image: Vec<u8>, required: &[Acked], kept: &[ThreadId]) -> Result<bool, String> {
    let backend = MemBackend::default();
    *backend
        .0
        .bytes
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = image;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Store::open_backend(backend, Path::new("image"))
    }))
    .map_err(|_| "opening the image panicked".to_owned())?;
    let store = match opened {
        Ok(store) => store,
        Err(error) => {
            let message = error.to_string();
            if !required.is_empty() || message.is_empty() {
                return Err(format!(
                    "refused an image holding answered writes: {message}"
                ));
            }
            return Ok(false);
        }
    };
    // A clock at the start: no thread has expired for the reads below.
    let data = Data::on(store, &limits(), Arc::new(ManualClock::new(start())))
        .map_err(|e| e.to_string())?;
    let records = data
        .ledger()
        .records_since(Timestamp::EPOCH, usize::MAX)
        .map_err(|e| e.to_string())?;
    let markers: BTreeSet<u64> = records.iter().map(|r| r.input_tokens).collect();
    let mut texts = Vec::new();
    for id in kept {
        match data.threads().get(id) {
            Ok(thread) => {
                if thread.summary.turn_count as usize != thread.turns.len() {
                    return Err(format!("thread {id}: summary and turns disagree"));
                }
                texts.extend(thread.turns.into_iter().map(|t| (*id, t.text)));
            }
            Err(crate::memory::ThreadError::NotFound { .. }) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    for acked in required {
        match acked {
            Acked::Record { marker } if !markers.contains(marker) => {
                return Err(format!("answered ledger record {marker} is missing"));
            }
            Acked::Turn { thread, text }
                if !texts.iter().any(|(id, t)| id == thread && t == text) =>
            {
                return Err(format!("answered turn {text:?} is missing"));
            }
            _ => {}
        }
    }
    let now = start().saturating_add(Duration::from_secs(3600 * 2 * ROUNDS as u64));
    let totals = data.ledger().totals(now).map_err(|e| e.to_string())?;
    let all = &totals.all_time.total;
    let cost: f64 = records.iter().filter_map(|r| r.cost_usd).sum();
    let input: u64 = records.iter().map(|r| r.input_tokens).sum();
    if all.calls != records.len() as u64
        || all.input_tokens != input
        || (all.cost_usd - cost).abs() > 1e-9
    {
        return Err(format!(
            "totals ({} calls, {} input tokens, ${}) differ from the {} records ({input}, ${cost})",
            all.calls,
            all.input_tokens,
            all.cost_usd,
            records.len()
        ));
    }
    drop(data);
    runtime.shutdown_background();
    Ok(true)
}

#[test]
fn every_crash_image_opens_with_every_answered_write_and_exact_totals() {
    let backend = Recording::default();
    let acks = Arc::new(Acks::default());
    let kept = run_workload(&backend, &acks);
    let events = backend.disk().events.clone();
    let acks = acks
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(acks.len() > 100, "the workload answered too little");

    let mut rng = fastrand::Rng::with_seed(30);
    let images = images(&events, &mut rng);
    assert!(images.len() > 50, "too few images: {}", images.len());
    let mut opened = 0;
    let mut failures = Vec::new();
    for (position, image) in images.iter().cloned() {
        let required: Vec<Acked> = acks
            .iter()
            .filter(|(acked_at, _)| *acked_at <= position)
            .map(|(_, acked)| acked.clone())
            .collect();
        match check_image(image, &required, &kept) {
            Ok(true) => opened += 1,
            Ok(false) => {}
            Err(failure) => failures.push(format!("image at event {position}: {failure}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} images failed:\n{}",
        failures.len(),
        images.len(),
        failures.join("\n")
    );
    assert!(
        opened > images.len() / 2,
        "only {opened} of {} images opened",
        images.len()
    );
}
