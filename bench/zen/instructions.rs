//! `--callgrind`: user-space instructions per call and per session start.

use super::*;

/// `--callgrind`: instructions per call, which the machine's load does not move.
pub(super) fn instructions(bins: &Bins, mock_url: &str, report: &mut Report) -> Result<(), String> {
    if !callgrind::available() {
        return Err("valgrind is not installed (apt-get install valgrind)".into());
    }
    let counts = callgrind::run(bins, mock_url)?;
    println!("  raw totals: {}", counts.raw);
    report.detail("instructions", counts.raw.clone());
    let whole = "rmcp stdio floor server, whole";
    for (metric, value) in [
        ("instructions per tools/call version: zen-shim", counts.shim),
        ("instructions per tools/call version: zend", counts.zend),
        (
            "instructions per tools/call version: zend, ZEN_LOG=warn",
            counts.zend_quiet,
        ),
        (
            "instructions per tools/call version: shim + zend",
            counts.shim + counts.zend,
        ),
    ] {
        report.row(
            "instructions",
            metric,
            value,
            Unit::Instr,
            Some((counts.floor, whole)),
            Target::None,
            "user space only (callgrind)",
        );
    }
    report.row(
        "instructions",
        "instructions per tools/call chat (new thread): zend",
        counts.zend_chat,
        Unit::Instr,
        None,
        Target::None,
        "user space only (callgrind), every zend thread, SSE mock",
    );
    report.row(
        "instructions",
        "instructions per tools/call chat (9 in 10 continue a thread): zend",
        counts.zend_chat_mix,
        Unit::Instr,
        Some((counts.zend_chat, "chat on a new thread each call")),
        Target::None,
        "user space only (callgrind), every zend thread, SSE mock; the store section's mix",
    );
    report.row(
        "instructions",
        "instructions: zen-shim start → initialize answered",
        counts.shim_start,
        Unit::Instr,
        Some((
            counts.floor_start,
            "rmcp stdio floor server, start → initialized",
        )),
        Target::None,
        "user space only (callgrind)",
    );
    Ok(())
}

pub(crate) fn target_dir(bins: &Bins) -> PathBuf {
    // <target>/<profile>/zend
    bins.zend
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}
