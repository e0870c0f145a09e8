//! What the shim pulls in: every MCP client launches one per session, so its
//! dependency list stays short and free of zend's machinery (HTTP clients, TLS,
//! JSON, the store). Its release size and peak memory are checked by the
//! benchmark (`scripts/bench.sh`, memory section), which builds it in release.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Crates the shim may never depend on, directly or not.
const FORBIDDEN: &[&str] = &[
    "serde",
    "serde_json",
    "reqwest",
    "rustls",
    "ring",
    "redb",
    "rmcp",
    "tracing-subscriber",
    "regex",
    "yaml_serde",
    "notify",
];

/// The most crates (itself, zen-proto and proc macros included) its normal
/// dependencies may number: today's 55 plus room for a patch release's split.
const MAX_CRATES: usize = 60;

/// `cargo tree` of the shim's normal dependencies, as `cargo install` resolves
/// them (the shim alone, not unified with zend's features).
fn shim_crates() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args([
            "tree",
            "-p",
            "zen-shim",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(command.output());
    });
    let output = result
        .recv_timeout(Duration::from_secs(300))
        .expect("cargo tree answers within 5 minutes")
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_shim_depends_on_few_crates_and_none_of_zends_machinery() {
    let crates = shim_crates();
    assert!(
        crates.contains("zen-shim") && crates.contains("tonic"),
        "cargo tree listed {crates:?}"
    );
    let forbidden: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|name| crates.contains(*name))
        .collect();
    assert!(
        forbidden.is_empty(),
        "the shim now depends on {forbidden:?}: keep it to framing and the gRPC stream \
         (move the work into zend)"
    );
    assert!(
        crates.len() <= MAX_CRATES,
        "the shim depends on {} crates (at most {MAX_CRATES}): {crates:?}",
        crates.len()
    );
}
