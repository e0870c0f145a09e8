//! The shim on its own, with no daemon to talk to. (End-to-end tests with a
//! daemon live in the workspace's `tests/`; this file also makes
//! `cargo test --workspace` build the shim binary they run.)

use std::process::{Command, Stdio};

#[test]
fn without_a_daemon_and_without_autostart_it_fails_in_one_line() {
    let home = std::env::temp_dir().join(format!("zen-shim-standalone-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_zen-shim"))
        .env_clear()
        .env("HOME", &home)
        .env("ZEN_HOME", &home)
        .env("ZEN_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "stdout belongs to the protocol");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ZEN_NO_AUTOSTART") && stderr.contains("zend serve"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
