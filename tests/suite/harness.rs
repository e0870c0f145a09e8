//! The harness keeps every run hermetic and bounded: the processes it starts
//! see no proxy and reach loopback directly, find no real assistant CLI on
//! PATH, and a command that hangs fails the test with a message.

use std::path::Path;
use std::time::Duration;

use crate::support::{ZenHome, output_within, without_assistant_clis};

#[test]
fn processes_started_by_the_harness_see_no_proxy_and_bypass_it_for_loopback() {
    let home = ZenHome::new();
    let output = output_within(
        &mut home.command(Path::new("/usr/bin/env")),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{output:?}");
    let env = String::from_utf8_lossy(&output.stdout);
    let vars: Vec<&str> = env.lines().collect();
    for line in &vars {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            !["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
                .contains(&name.to_ascii_uppercase().as_str()),
            "a proxy reaches the process: {line}"
        );
    }
    for name in ["NO_PROXY", "no_proxy"] {
        let line = format!("{name}=127.0.0.1,localhost,::1");
        assert!(
            vars.contains(&line.as_str()),
            "{name} is not loopback: {env}"
        );
    }
}

#[test]
fn no_directory_holding_a_real_assistant_cli_stays_on_path() {
    let with_cli = tempfile::tempdir().unwrap();
    let without = tempfile::tempdir().unwrap();
    std::fs::write(with_cli.path().join("claude"), "#!/bin/sh\n").unwrap();
    let path = std::env::join_paths([with_cli.path(), without.path()]).unwrap();
    assert_eq!(
        without_assistant_clis(&path),
        without.path().display().to_string()
    );
}

#[test]
fn a_command_past_its_deadline_fails_the_test_with_a_message() {
    let hang = std::panic::catch_unwind(|| {
        output_within(
            std::process::Command::new("sleep").arg("600"),
            Duration::from_millis(200),
        )
    });
    let message = hang.expect_err("a hung command fails");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("did not finish within"), "{message}");
}
