//! Section 3: memory of the shim and zend with 8, 64 and 256 sessions, and after they close.

use super::*;

/// Adds sessions of `program` (each after one `version` call) until there are `n`.
pub(super) fn grow(
    home: &Home,
    clients: &mut Vec<Mcp>,
    program: &Path,
    n: usize,
) -> Result<(), String> {
    while clients.len() < n {
        let mut client = io(procs::cold_start(home.command(program)))?.0;
        io(client.request("tools/call", Some(VERSION_CALL)))?;
        clients.push(client);
    }
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

pub(super) struct MemSample {
    pub(super) rss: f64,
    pub(super) pss: f64,
}

pub(super) fn mem_of(pids: impl IntoIterator<Item = u32>) -> MemSample {
    let mut sample = MemSample { rss: 0.0, pss: 0.0 };
    for pid in pids {
        sample.rss += procs::status_kib(pid, "VmRSS").unwrap_or(0) as f64;
        sample.pss += procs::pss(pid).unwrap_or(0) as f64;
    }
    sample
}

/// 3. Peak RSS of a shim; zend idle and with 8, 64 and 256 sessions.
pub(super) fn memory(
    bins: &Bins,
    plan: &Plan,
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let home = io(Home::new())?;
    let (zend, _) = io(home.start_daemon(bins))?;
    std::thread::sleep(Duration::from_millis(300));
    let idle = mem_of([zend]);

    // The floor: the same number of floor servers, each after one call.
    let mut floor_clients: Vec<Mcp> = Vec::new();
    let mut floor_by_n = Vec::new();
    grow(&home, &mut floor_clients, &bins.floor, 1)?;
    let one_floor = mem_of(floor_clients.iter().map(Mcp::pid));
    floors.floor_rss = one_floor.rss;
    if floors.floor_hwm == 0.0 {
        floors.floor_hwm = procs::status_kib(floor_clients[0].pid(), "VmHWM").unwrap_or(0) as f64;
    }
    for &n in plan.memory_sessions {
        grow(&home, &mut floor_clients, &bins.floor, n)?;
        floor_by_n.push((n, mem_of(floor_clients.iter().map(Mcp::pid))));
    }
    for client in floor_clients {
        client.close();
    }

    report.row(
        "memory",
        "zend RSS, idle",
        idle.rss,
        Unit::MiB,
        Some((one_floor.rss, "rmcp stdio floor server")),
        Target::None,
        "",
    );
    let mut shims: Vec<Mcp> = Vec::new();
    let mut details = serde_json::Map::new();
    let mut shim_hwm = 0.0f64;
    let mut per_n = Vec::new();
    for (n, floor) in &floor_by_n {
        grow(&home, &mut shims, &bins.shim, *n)?;
        let daemon = mem_of([zend]);
        let shim_mem = mem_of(shims.iter().map(Mcp::pid));
        for shim in &shims {
            shim_hwm = shim_hwm.max(procs::status_kib(shim.pid(), "VmHWM").unwrap_or(0) as f64);
        }
        let what = format!("{n} × rmcp stdio floor server");
        report.row(
            "memory",
            format!("zend RSS, {n} sessions"),
            daemon.rss,
            Unit::MiB,
            Some((floor.rss, &what)),
            Target::None,
            "",
        );
        report.row(
            "memory",
            format!("zen-shims + zend RSS, {n} sessions"),
            daemon.rss + shim_mem.rss,
            Unit::MiB,
            Some((floor.rss, &what)),
            if *n == 8 {
                Target::AtMost(40.0 * MIB)
            } else {
                Target::None
            },
            "",
        );
        report.row(
            "memory",
            format!("zen-shims + zend PSS, {n} sessions"),
            daemon.pss + shim_mem.pss,
            Unit::MiB,
            Some((floor.pss, &what)),
            Target::None,
            "PSS: shared pages counted once",
        );
        details.insert(
            format!("{n}_sessions"),
            json!({
                "zend_rss": daemon.rss, "zend_pss": daemon.pss,
                "shims_rss": shim_mem.rss, "shims_pss": shim_mem.pss,
                "floor_rss": floor.rss, "floor_pss": floor.pss,
            }),
        );
        per_n.push((*n, daemon.rss));
    }
    if let [.., (n1, r1), (n2, r2)] = per_n[..] {
        report.row(
            "memory",
            format!("zend RSS per extra session ({n1} → {n2})"),
            (r2 - r1) / (n2 - n1) as f64,
            Unit::MiB,
            Some((one_floor.rss, "one rmcp stdio floor server")),
            Target::None,
            "",
        );
    }
    let floor_hwm = floors.floor_hwm;
    report.row(
        "memory",
        "zen-shim peak RSS (VmHWM)",
        shim_hwm,
        Unit::MiB,
        (floor_hwm > 0.0).then_some((floor_hwm, "rmcp stdio floor server")),
        Target::AtMost(4.0 * MIB),
        "",
    );
    // What users install per client: built alone (a shim built together with
    // zend gets tokio's multi-thread scheduler and libm, +0.5 MiB per session).
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0.0, |m| m.len() as f64);
    report.row(
        "memory",
        "zen-shim release binary size",
        size(&bins.shim),
        Unit::MiB,
        Some((size(&bins.floor), "rmcp stdio floor server")),
        Target::AtMost(3.0 * MIB),
        "",
    );
    for shim in shims {
        shim.close();
    }
    // zend hands freed heap back to the system every 5 s (daemon/src/malloc.rs): look after that.
    std::thread::sleep(Duration::from_millis(500));
    let soon = mem_of([zend]);
    std::thread::sleep(Duration::from_secs(6));
    let after = mem_of([zend]);
    report.row(
        "memory",
        "zend RSS 0.5 s after every session closed",
        soon.rss,
        Unit::MiB,
        Some((idle.rss, "zend idle, same run")),
        Target::None,
        "",
    );
    report.row(
        "memory",
        "zend RSS 6.5 s after every session closed (after a trim)",
        after.rss,
        Unit::MiB,
        Some((idle.rss, "zend idle, same run")),
        Target::None,
        "",
    );
    details.insert(
        "idle".into(),
        json!({"zend_rss": idle.rss, "zend_pss": idle.pss}),
    );
    details.insert(
        "after_close".into(),
        json!({"zend_rss": after.rss, "zend_pss": after.pss}),
    );
    details.insert("shim_vmhwm".into(), json!(shim_hwm));
    floors.zen.shim_hwm = shim_hwm;
    report.detail("memory", Value::Object(details));
    home.stop_daemon();
    Ok(())
}
