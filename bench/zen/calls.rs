//! Sections 2 and 4: round trips, CPU per call, and throughput (`version` and `chat`).

use super::*;

/// What a process spent per call: CPU seconds and context switches.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PerCall {
    pub(super) cpu: f64,
    pub(super) switches: f64,
}

/// A timed call: when its request was sent, and how long its answer took.
pub(super) type Span = (Instant, Duration);

/// How long each of `spans` took.
pub(super) fn durations(spans: &[Span]) -> Vec<Duration> {
    spans.iter().map(|(_, took)| *took).collect()
}

/// Calls `method` `warmup + n` times; the timed calls and, for each pid, what it spent per
/// timed call.
pub(super) fn timed_calls(
    client: &mut Mcp,
    method: &str,
    params: Option<&str>,
    warmup: usize,
    n: usize,
    pids: &[u32],
) -> Result<(Vec<Span>, Vec<PerCall>), String> {
    for _ in 0..warmup {
        io(client.request(method, params))?;
    }
    let sample = |p: &u32| {
        (
            procs::cpu_ns(*p).unwrap_or(0),
            procs::ctx_switches(*p).unwrap_or(0),
        )
    };
    let before: Vec<(u64, u64)> = pids.iter().map(sample).collect();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        let (_, t) = io(client.request_timed(method, params))?;
        samples.push((sent, t));
    }
    let spent = pids
        .iter()
        .zip(before)
        .map(|(p, (cpu, switches))| {
            let (cpu_after, switches_after) = sample(p);
            PerCall {
                cpu: cpu_after.saturating_sub(cpu) as f64 / 1e9 / n as f64,
                switches: switches_after.saturating_sub(switches) as f64 / n as f64,
            }
        })
        .collect();
    Ok((samples, spent))
}

/// Section 2: one JSON-RPC round trip through shim and daemon, against a
/// Unix-socket echo; plus the same without the shim (gRPC straight to zend) and
/// the rmcp floor server, to show where the time goes; CPU and context switches
/// per call.
pub(super) fn round_trip(
    bins: &Bins,
    home: &Home,
    zend: u32,
    plan: &Plan,
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let (warm, n) = (plan.rtt_warmup, plan.rtt_n);
    let ping_line = br#"{"jsonrpc":"2.0","id":1234,"method":"ping"}
"#;
    let ping_frame = &ping_line[..ping_line.len() - 1];
    let mut shim = shim_session(bins, home)?;
    let shim_pid = shim.pid();
    let mut floor = floor_session(bins, home)?;
    let floor_pid = floor.pid();
    let mut command = home.command(&bins.floor);
    command.arg("--blocking-stdio");
    let (mut blocking, _) = io(procs::cold_start(command))?;
    for client in [&mut shim, &mut floor, &mut blocking] {
        timed_calls(client, "ping", None, warm, 0, &[])?;
        timed_calls(client, "tools/call", Some(VERSION_CALL), warm, 0, &[])?;
    }

    // Every path in turn, in rounds, so that a burst of load from elsewhere
    // on the machine hits the floors and zen alike.
    const ROUNDS: usize = 5;
    let per = (n / ROUNDS).max(1);
    let (mut echo, mut direct) = (Vec::new(), Vec::new());
    let (mut ping, mut version) = (Vec::new(), Vec::new());
    let (mut floor_ping, mut floor_version, mut blocking_ping) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut spent = [PerCall::default(); 3];
    let mut add = |i: usize, got: &[PerCall]| {
        for (total, one) in spent[i..].iter_mut().zip(got) {
            total.cpu += one.cpu / ROUNDS as f64;
            total.switches += one.switches / ROUNDS as f64;
        }
    };
    for _ in 0..ROUNDS {
        echo.extend(io(echo::round_trips(ping_line, 50, per))?);
        ping.extend(durations(
            &timed_calls(&mut shim, "ping", None, 0, per, &[])?.0,
        ));
        let (samples, got) = timed_calls(
            &mut shim,
            "tools/call",
            Some(VERSION_CALL),
            0,
            per,
            &[shim_pid, zend],
        )?;
        version.extend(durations(&samples));
        add(0, &got);
        // Straight to zend over gRPC (the shim's half of the path left out).
        direct.extend(grpc::round_trips(&home.socket(), ping_frame, 50, per)?);
        floor_ping.extend(durations(
            &timed_calls(&mut floor, "ping", None, 0, per, &[])?.0,
        ));
        let (samples, got) = timed_calls(
            &mut floor,
            "tools/call",
            Some(VERSION_CALL),
            0,
            per,
            &[floor_pid],
        )?;
        floor_version.extend(durations(&samples));
        add(2, &got);
        blocking_ping.extend(durations(
            &timed_calls(&mut blocking, "ping", None, 0, per, &[])?.0,
        ));
    }
    floors.floor_hwm = procs::status_kib(floor_pid, "VmHWM").unwrap_or(0) as f64;
    shim.close();
    floor.close();
    blocking.close();
    let [shim_spent, zend_spent, floor_spent] = spent;
    let (echo, direct) = (Summary::of(&echo), Summary::of(&direct));
    floors.echo_rtt = echo;

    let (ping, version) = (Summary::of(&ping), Summary::of(&version));
    let (floor_ping, floor_version) = (Summary::of(&floor_ping), Summary::of(&floor_version));
    let blocking_ping = Summary::of(&blocking_ping);
    let echo_floor = "Unix-socket echo";
    let rmcp_floor = "rmcp stdio floor server";
    for (metric, value, floor, target) in [
        ("ping via shim + zend (p50)", ping.p50, echo.p50, 100e-6),
        ("ping via shim + zend (p95)", ping.p95, echo.p95, 100e-6),
        (
            "tools/call version via shim + zend (p50)",
            version.p50,
            echo.p50,
            100e-6,
        ),
        (
            "tools/call version via shim + zend (p95)",
            version.p95,
            echo.p95,
            100e-6,
        ),
    ] {
        report.row(
            "round trip",
            metric,
            value,
            Unit::Us,
            Some((floor, echo_floor)),
            Target::OverFloorAtMost(target),
            "",
        );
    }
    report.row(
        "round trip",
        "ping via gRPC straight to zend, no shim (p50)",
        direct.p50,
        Unit::Us,
        Some((echo.p50, echo_floor)),
        Target::None,
        "diagnostic: the shim's share is the difference",
    );
    report.row(
        "round trip",
        "ping via shim + zend (p50), vs rmcp stdio server",
        ping.p50,
        Unit::Us,
        Some((floor_ping.p50, rmcp_floor)),
        Target::None,
        "",
    );
    report.row(
        "round trip",
        "tools/call version (p50), vs rmcp stdio server",
        version.p50,
        Unit::Us,
        Some((floor_version.p50, rmcp_floor)),
        Target::None,
        "",
    );
    let whole = "rmcp stdio floor server, whole";
    for (metric, value) in [
        ("CPU per tools/call version: zen-shim", shim_spent.cpu),
        ("CPU per tools/call version: zend", zend_spent.cpu),
        (
            "CPU per tools/call version: shim + zend",
            shim_spent.cpu + zend_spent.cpu,
        ),
    ] {
        report.row(
            "cpu",
            metric,
            value,
            Unit::Us,
            Some((floor_spent.cpu, whole)),
            Target::None,
            "",
        );
    }
    for (metric, value) in [
        (
            "context switches per tools/call version: zen-shim",
            shim_spent.switches,
        ),
        (
            "context switches per tools/call version: zend",
            zend_spent.switches,
        ),
    ] {
        report.row(
            "cpu",
            metric,
            value,
            Unit::Count,
            Some((floor_spent.switches, whole)),
            Target::None,
            "",
        );
    }
    report.detail(
        "round_trip",
        json!({
            "echo": echo.json(),
            "zen_ping": ping.json(),
            "zen_version": version.json(),
            "grpc_direct_ping": direct.json(),
            "floor_ping": floor_ping.json(),
            "floor_version": floor_version.json(),
            "floor_blocking_stdio_ping": blocking_ping.json(),
            "per_version_call": {
                "shim": {"cpu_s": shim_spent.cpu, "context_switches": shim_spent.switches},
                "zend": {"cpu_s": zend_spent.cpu, "context_switches": zend_spent.switches},
                "floor": {"cpu_s": floor_spent.cpu, "context_switches": floor_spent.switches},
            },
        }),
    );
    println!(
        "  (floor server with rmcp's blocking stdio(): ping p50 {})",
        Unit::Us.show(blocking_ping.p50)
    );
    Ok(())
}

/// Every client calls `tools/call` with `params` back to back: after `warmup`, for `measure`.
/// Returns the latencies of the calls completed in the window, how many answers were not a
/// success (`"isError":false`), and the clients.
pub(super) fn load(
    clients: Vec<Mcp>,
    params: &str,
    warmup: Duration,
    measure: Duration,
) -> Result<(Vec<Duration>, usize, Vec<Mcp>), String> {
    stats::window(clients, warmup, measure, |client| {
        let (answer, t) = io(client.request_timed("tools/call", Some(params)))?;
        Ok((t, answer.contains(r#""isError":false"#)))
    })
}

/// Section 4: 1, 8 and 64 sessions calling `version` concurrently (against as many floor servers),
/// then `chat` against the 0 ms mock (against as many direct clients of the mock).
pub(super) fn throughput(
    bins: &Bins,
    home: &Home,
    plan: &Plan,
    mock: &mock::Mock,
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let mut details = serde_json::Map::new();
    for &sessions in plan.throughput_sessions {
        let mut figures = Vec::new();
        for program in [&bins.shim, &bins.floor] {
            let clients = (0..sessions)
                .map(|_| io(procs::cold_start(home.command(program))).map(|(c, _)| c))
                .collect::<Result<Vec<_>, _>>()?;
            let (samples, _, clients) = load(
                clients,
                VERSION_CALL,
                plan.throughput_warmup,
                plan.throughput_for,
            )?;
            for client in clients {
                client.close();
            }
            figures.push((
                samples.len() as f64 / plan.throughput_for.as_secs_f64(),
                Summary::of(&samples),
            ));
        }
        let ((zen_rate, zen), (floor_rate, floor)) = (figures[0], figures[1]);
        let what = format!("{sessions} × rmcp stdio floor server");
        report.row(
            "throughput",
            format!("version calls/s, {sessions} session(s)"),
            zen_rate,
            Unit::PerSec,
            Some((floor_rate, &what)),
            Target::None,
            "higher is better",
        );
        report.row(
            "throughput",
            format!("version call p95, {sessions} session(s)"),
            zen.p95,
            Unit::Us,
            Some((floor.p95, &what)),
            Target::None,
            "",
        );
        details.insert(
            format!("{sessions}_sessions"),
            json!({"zen_calls_per_s": zen_rate, "zen": zen.json(), "floor_calls_per_s": floor_rate, "floor": floor.json()}),
        );
    }
    chat_throughput(bins, home, plan, mock, report, &mut details, floors)?;
    report.detail("throughput", Value::Object(details));
    Ok(())
}

/// `chat` calls (a new thread each) from 1, 8 and 64 sessions at once against the 0 ms mock;
/// the floor is as many clients calling the mock directly.
pub(super) fn chat_throughput(
    bins: &Bins,
    home: &Home,
    plan: &Plan,
    mock: &mock::Mock,
    report: &mut Report,
    details: &mut serde_json::Map<String, Value>,
    floors: &mut Floors,
) -> Result<(), String> {
    let params =
        json!({"name": "chat", "arguments": {"prompt": "Say hi.", "model": mock::CHAT_MODEL}})
            .to_string();
    for &sessions in plan.throughput_sessions {
        let mut clients = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut client = shim_session(bins, home)?;
            // One call first: the model resolved, the provider's connection open.
            let first = io(client.request("tools/call", Some(&params)))?;
            if !first.contains(r#""isError":false"#) {
                return Err(format!(
                    "chat against the mock failed: {}",
                    first.chars().take(300).collect::<String>()
                ));
            }
            clients.push(client);
        }
        let (samples, failed, clients) = load(
            clients,
            &params,
            plan.throughput_warmup,
            plan.throughput_for,
        )?;
        let seconds = plan.throughput_for.as_secs_f64();
        let rate = samples.len() as f64 / seconds;
        if sessions == PEER_SESSIONS {
            // What the peer's sessions are put against: the rate, and the memory of these
            // sessions (shims + zend) right after their calls.
            let shims = mem_of(clients.iter().map(Mcp::pid));
            let daemon_pid = home.daemon_pid();
            let daemon = mem_of(daemon_pid);
            let field = |name| {
                daemon_pid
                    .and_then(|pid| procs::status_kib(pid, name))
                    .unwrap_or(0) as f64
            };
            let (anon, file) = (field("RssAnon"), field("RssFile"));
            if let (Some(dir), Some(pid)) = (std::env::var_os("ZEN_BENCH_SMAPS"), daemon_pid) {
                // For a closer look at where zend's memory is: its mappings, as they are now.
                let to = Path::new(&dir).join("zend-after-chat8.smaps");
                if let Err(e) = std::fs::copy(format!("/proc/{pid}/smaps"), &to) {
                    println!("  (could not keep zend's smaps in {}: {e})", to.display());
                }
            }
            floors.zen.chat8_rate = rate;
            floors.zen.chat8_rss = shims.rss + daemon.rss;
            floors.zen.chat8_pss = shims.pss + daemon.pss;
            println!(
                "  right after: zend RSS {} (anon {}, file-backed {}), {sessions} shims {}",
                Unit::MiB.show(daemon.rss),
                Unit::MiB.show(anon),
                Unit::MiB.show(file),
                Unit::MiB.show(shims.rss)
            );
            details.insert(
                format!("chat_{sessions}_sessions_memory"),
                json!({"zend_rss": daemon.rss, "zend_rss_anon": anon, "zend_rss_file": file, "shims_rss": shims.rss}),
            );
        }
        for client in clients {
            client.close();
        }
        let direct = mock::direct_load(
            &mock.base_url,
            sessions,
            plan.throughput_warmup,
            plan.throughput_for,
        )?;
        let direct_rate = direct.len() as f64 / seconds;
        let (zen, floor) = (Summary::of(&samples), Summary::of(&direct));
        let what = format!("{sessions} direct client(s) of the mock, SSE");
        let target = if sessions == 8 {
            Target::AtLeast(1500.0)
        } else {
            Target::None
        };
        report.row(
            "throughput",
            format!("chat calls/s against the 0 ms mock, {sessions} session(s)"),
            rate,
            Unit::PerSec,
            Some((direct_rate, &what)),
            target,
            "higher is better",
        );
        report.row(
            "throughput",
            format!("chat call p95, {sessions} session(s)"),
            zen.p95,
            Unit::Us,
            Some((floor.p95, &what)),
            Target::None,
            "",
        );
        report.row(
            "throughput",
            format!("chat calls that failed, {sessions} session(s)"),
            failed as f64,
            Unit::Count,
            None,
            Target::AtMost(0.0),
            "",
        );
        details.insert(
            format!("chat_{sessions}_sessions"),
            json!({"zen_calls_per_s": rate, "zen": zen.json(), "failed": failed,
                   "direct_calls_per_s": direct_rate, "direct": floor.json()}),
        );
    }
    Ok(())
}
