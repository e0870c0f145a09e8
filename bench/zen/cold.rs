//! Sections 1: the cold start with zend running, and auto-start (no daemon yet).

use super::*;

pub(super) fn floor_session(bins: &Bins, home: &Home) -> Result<Mcp, String> {
    io(procs::cold_start(home.command(&bins.floor))).map(|(client, _)| client)
}

/// 1. spawn → initialize answer with zend running, against the floor server.
pub(super) fn cold_start(
    bins: &Bins,
    home: &Home,
    zend: u32,
    plan: &Plan,
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let warmup = 3;
    let (mut zen, mut floor, mut floor_default) = (Vec::new(), Vec::new(), Vec::new());
    // The shim against a bare gRPC server: the design's floor (see `bare`).
    let bare_home = io(Home::new())?;
    let _bare = bare::Bare::start(&bare_home.socket())?;
    let mut bare = Vec::new();
    let (mut shim_cpu, mut floor_cpu, mut zend_cpu) = (0u64, 0u64, 0u64);
    // Interleaved, so that noise from other load hits both alike.
    for i in 0..warmup + plan.cold_n {
        if let Some(default) = &bins.floor_default {
            let (client, d) = io(procs::cold_start(home.command(default)))?;
            client.close();
            if i >= warmup {
                floor_default.push(d);
            }
        }
        let zend_before = procs::cpu_ns(zend).unwrap_or(0);
        let (client, t) = io(procs::cold_start(home.command(&bins.shim)))?;
        let shim_spent = procs::cpu_ns(client.pid()).unwrap_or(0);
        client.close();
        let zend_spent = procs::cpu_ns(zend).unwrap_or(0).saturating_sub(zend_before);
        let (client, f) = io(procs::cold_start(home.command(&bins.floor)))?;
        let floor_spent = procs::cpu_ns(client.pid()).unwrap_or(0);
        client.close();
        let (client, b) = io(procs::cold_start(bare_home.command(&bins.shim)))?;
        client.close();
        if i >= warmup {
            bare.push(b);
            zen.push(t);
            floor.push(f);
            shim_cpu += shim_spent;
            zend_cpu += zend_spent;
            floor_cpu += floor_spent;
        }
    }
    let per = |total: u64| total as f64 / 1e9 / plan.cold_n as f64;
    let (shim_cpu, zend_cpu, floor_cpu) = (per(shim_cpu), per(zend_cpu), per(floor_cpu));
    let (zen, floor) = (Summary::of(&zen), Summary::of(&floor));
    floors.floor_cold = floor;
    floors.zen.cold_p50 = zen.p50;
    report.row(
        "cold start",
        "spawn zen-shim → initialize answer, zend running (p50)",
        zen.p50,
        Unit::Ms,
        Some((floor.p50, "rmcp stdio floor server")),
        Target::RatioAtMost(1.5),
        "",
    );
    report.row(
        "cold start",
        "spawn zen-shim → initialize answer, zend running (p95)",
        zen.p95,
        Unit::Ms,
        Some((floor.p95, "rmcp stdio floor server")),
        Target::None,
        "",
    );
    if let (Some(default), false) = (&bins.floor_default, floor_default.is_empty()) {
        report.row(
            "cold start",
            "same (p50), against the floor server as cargo builds it",
            zen.p50,
            Unit::Ms,
            Some((
                Summary::of(&floor_default).p50,
                &format!("rmcp stdio floor server, {}", procs::linkage(default)),
            )),
            Target::None,
            "",
        );
    }
    let bare = Summary::of(&bare);
    report.row(
        "cold start",
        "spawn zen-shim → initialize answer, a bare gRPC server behind it (p50)",
        bare.p50,
        Unit::Ms,
        Some((floor.p50, "rmcp stdio floor server")),
        Target::None,
        "",
    );
    report.row(
        "cold start",
        "zen (p50) over the design's floor: the shim + a bare gRPC server",
        zen.p50,
        Unit::Ms,
        Some((bare.p50, "zen-shim → bare zen.v1.Zend server, same rounds")),
        Target::None,
        "",
    );
    let to_init = "rmcp stdio floor server, start → initialized";
    report.row(
        "cold start",
        "CPU: zen-shim, start → initialize answered",
        shim_cpu,
        Unit::Ms,
        Some((floor_cpu, to_init)),
        Target::None,
        "",
    );
    report.row(
        "cold start",
        "CPU: zend per session (open, initialize, close)",
        zend_cpu,
        Unit::Ms,
        Some((floor_cpu, to_init)),
        Target::None,
        "",
    );
    report.detail(
        "cold_start",
        json!({
            "zen": zen.json(), "floor": floor.json(), "bare_grpc": bare.json(),
            "cpu_s": {"shim_to_initialized": shim_cpu, "zend_per_session": zend_cpu, "floor_to_initialized": floor_cpu},
        }),
    );
    Ok(())
}

/// 1b. spawn zen-shim with no daemon: the shim starts zend and waits for it.
pub(super) fn auto_start(
    bins: &Bins,
    plan: &Plan,
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let (mut fresh, mut again, mut ready, mut ready_again) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.autostart_n {
        let home = io(Home::new())?;
        let (client, t) = io(procs::cold_start(home.command(&bins.shim)))?;
        home.daemon_pid();
        client.close();
        home.stop_daemon();
        fresh.push(t);
        // Same home again: the store exists, no daemon runs.
        let (client, t) = io(procs::cold_start(home.command(&bins.shim)))?;
        home.daemon_pid();
        client.close();
        home.stop_daemon();
        again.push(t);
        // zend alone, polled tightly: how much of the cold start is the shim's back-off.
        let home = io(Home::new())?;
        let (_, t) = io(home.start_daemon(bins))?;
        home.stop_daemon();
        ready.push(t);
        let (_, t) = io(home.start_daemon(bins))?;
        home.stop_daemon();
        ready_again.push(t);
    }
    let (fresh, again, ready, ready_again) = (
        Summary::of(&fresh),
        Summary::of(&again),
        Summary::of(&ready),
        Summary::of(&ready_again),
    );
    let floor = floors.floor_cold.p50;
    let floor = (floor > 0.0).then_some((floor, "rmcp stdio floor server"));
    report.row(
        "cold start",
        "auto-start: spawn zen-shim → initialize, fresh ZEN_HOME (p50)",
        fresh.p50,
        Unit::Ms,
        floor,
        Target::AtMost(0.050),
        "",
    );
    report.row(
        "cold start",
        "auto-start: same, existing store (p50)",
        again.p50,
        Unit::Ms,
        floor,
        Target::AtMost(0.050),
        "",
    );
    report.row(
        "cold start",
        "zend serve → socket accepts, fresh ZEN_HOME (p50)",
        ready.p50,
        Unit::Ms,
        floor,
        Target::None,
        "diagnostic: daemon start-up alone, polled every 200 µs",
    );
    report.row(
        "cold start",
        "zend serve → socket accepts, existing store (p50)",
        ready_again.p50,
        Unit::Ms,
        floor,
        Target::None,
        "diagnostic: daemon start-up alone, polled every 200 µs",
    );
    report.detail(
        "auto_start",
        json!({
            "fresh_home": fresh.json(), "existing_home": again.json(),
            "zend_ready": ready.json(), "zend_ready_existing_store": ready_again.json(),
        }),
    );
    Ok(())
}
