//! Operating zen: services, socket activation, client registration, logs, HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{ZenHome, pid_from_version, result_text, shim_bin, zend_bin};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A directory on PATH holding a fake `systemctl` that logs its arguments.
fn fake_systemctl(home: &ZenHome) -> (PathBuf, PathBuf) {
    let bin = home.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = home.path().join("systemctl.log");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho \"fake systemctl $*\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (PathBuf::from(path), log)
}

#[test]
fn service_install_print_shows_units_and_writes_nothing() {
    let home = ZenHome::new();
    let output = home.zend(&["service", "install", "--print", "--manager", "systemd"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let socket = home.socket();
    for needle in [
        format!("ListenStream={}", socket.display()),
        format!(
            "ExecStart=\"{}\" serve --service",
            zend_bin().canonicalize().unwrap().display()
        ),
        format!("Environment=\"ZEN_HOME={}\"", home.path().display()),
        "# would run: systemctl --user enable --now zend.socket".to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in:\n{text}");
    }
    assert!(!home.path().join(".config").exists());
    assert!(!zen_proto::paths::managed_marker(&socket).exists());

    let plist = stdout(&home.zend(&["service", "install", "--print", "--manager", "launchd"]));
    assert!(
        plist.contains("<key>KeepAlive</key>") && plist.contains("Library/LaunchAgents"),
        "{plist}"
    );
}

#[test]
fn service_install_status_uninstall_with_a_fake_systemctl() {
    let mut home = ZenHome::new();
    let (path, log) = fake_systemctl(&home);
    home.env
        .push(("PATH".into(), path.to_string_lossy().into_owned()));
    let units = home.path().join(".config/systemd/user");

    let install = home.zend(&["service", "install", "--manager", "systemd"]);
    assert!(install.status.success(), "{install:?}");
    assert!(units.join("zend.socket").is_file());
    assert!(units.join("zend.service").is_file());
    assert!(zen_proto::paths::managed_marker(&home.socket()).is_file());

    let status = home.zend(&["service", "status", "--manager", "systemd"]);
    assert!(status.status.success(), "{status:?}");
    assert!(stdout(&status).contains("fake systemctl --user --no-pager status"));

    let uninstall = home.zend(&["service", "uninstall", "--manager", "systemd"]);
    assert!(uninstall.status.success(), "{uninstall:?}");
    assert!(!units.join("zend.socket").exists());
    assert!(!zen_proto::paths::managed_marker(&home.socket()).exists());
    let status = home.zend(&["service", "status", "--manager", "systemd"]);
    assert_eq!(status.status.code(), Some(3), "{status:?}");

    let calls = std::fs::read_to_string(log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        vec![
            "--user daemon-reload",
            "--user enable --now zend.socket",
            "--user --no-pager status zend.socket zend.service",
            "--user disable --now zend.socket zend.service",
            "--user daemon-reload",
        ]
    );
}

#[test]
fn a_shim_that_finds_the_service_marker_never_starts_zend() {
    let home = ZenHome::new();
    std::fs::create_dir_all(home.path().join("run")).unwrap();
    std::fs::write(zen_proto::paths::managed_marker(&home.socket()), b"").unwrap();
    let output = home
        .command(&shim_bin())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("zend service status"), "{stderr}");
    assert!(home.zend_pids().is_empty());
}

/// Starts `zend serve` the way systemd does for a socket unit: the listening
/// socket as fd 3, `LISTEN_FDS=1`, `LISTEN_PID` = zend's own pid (the shell
/// exports its `$$` and then execs zend, which keeps that pid).
fn spawn_activated(home: &ZenHome, socket: &Path) -> std::process::Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    let fd = listener.as_raw_fd();
    let mut command = home.command(Path::new("/bin/sh"));
    command
        .args(["-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" serve"])
        .arg(zend_bin())
        .env("LISTEN_FDS", "1")
        .env("ZEN_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    drop(listener);
    child
}

#[test]
fn socket_activation_serves_the_passed_socket_and_leaves_it_on_stop() {
    let mut home = ZenHome::new();
    let dir = home.path().join("act");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("zend.sock");
    let mut daemon = spawn_activated(&home, &socket);
    home.env
        .push(("ZEN_SOCKET".into(), socket.to_string_lossy().into_owned()));
    // Nothing may start a zend of its own: the activated one must answer.
    home.env.push(("ZEN_NO_AUTOSTART".into(), "1".into()));

    let mut client = home.session();
    let pid = pid_from_version(&result_text(&client.call_tool("version", json!({}))));
    assert_eq!(pid, daemon.id());
    let status: Value = serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["socket_path"], socket.to_string_lossy().as_ref());
    assert_eq!(status["auto_started"], false);

    assert!(stop_child(&home, &mut daemon).success());
    assert!(
        socket.exists(),
        "zend must not remove a socket it did not create"
    );
    drop(client);
}

#[test]
fn a_zend_started_by_hand_marks_itself_managed_with_service() {
    let home = ZenHome::new();
    let mut daemon = home
        .command(&zend_bin())
        .args(["serve", "--service"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = home.session();
    client.call_tool("version", json!({}));
    assert!(zen_proto::paths::managed_marker(&home.socket()).is_file());
    assert!(stop_child(&home, &mut daemon).success());
}

/// `zend stop` for a zend that is our child: reap it while stop waits, or
/// stop would see the zombie as still alive.
fn stop_child(home: &ZenHome, daemon: &mut std::process::Child) -> std::process::ExitStatus {
    let stop = home
        .command(&zend_bin())
        .arg("stop")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = daemon.wait().unwrap();
    let stop = stop.wait_with_output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
    status
}

#[test]
fn register_edits_client_configs_without_clobbering_them() {
    let home = ZenHome::new();
    let shim = shim_bin().canonicalize().unwrap();
    let shim = shim.to_string_lossy();
    let cursor = home.path().join(".cursor/mcp.json");
    std::fs::create_dir_all(cursor.parent().unwrap()).unwrap();
    let before = "{\n  \"mcpServers\": {\n    \"other\": {\"command\": \"other\"}\n  },\n  \"keep\": true\n}\n";
    std::fs::write(&cursor, before).unwrap();

    let print = home.zend(&["register", "cursor", "--print"]);
    assert!(print.status.success(), "{print:?}");
    assert!(stdout(&print).contains(shim.as_ref()), "{}", stdout(&print));
    assert_eq!(std::fs::read_to_string(&cursor).unwrap(), before);

    let applied = home.zend(&["register", "cursor"]);
    assert!(applied.status.success(), "{applied:?}");
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&cursor).unwrap()).unwrap();
    assert_eq!(config["mcpServers"]["other"]["command"], "other");
    assert_eq!(config["mcpServers"]["zen"]["command"], shim.as_ref());
    assert_eq!(config["keep"], true);
    let again = home.zend(&["register", "cursor"]);
    assert!(stdout(&again).contains("nothing to do"), "{again:?}");

    let codex = home.path().join(".codex/config.toml");
    std::fs::create_dir_all(codex.parent().unwrap()).unwrap();
    std::fs::write(&codex, "# mine\n[mcp_servers.other]\ncommand = \"other\"\n").unwrap();
    assert!(home.zend(&["register", "codex"]).status.success());
    let text = std::fs::read_to_string(&codex).unwrap();
    assert!(
        text.starts_with("# mine\n[mcp_servers.other]\ncommand = \"other\"\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[mcp_servers.zen]\ncommand = \"{shim}\"\nargs = []\ntool_timeout_sec = 600\n"
        )),
        "{text}"
    );

    for (client, path) in [
        ("gemini", ".gemini/settings.json"),
        (
            "claude-desktop",
            ".config/Claude/claude_desktop_config.json",
        ),
    ] {
        let output = home.zend(&["register", client]);
        assert!(output.status.success(), "{output:?}");
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(home.path().join(path)).unwrap())
                .unwrap();
        assert_eq!(
            config["mcpServers"]["zen"]["command"],
            shim.as_ref(),
            "{client}"
        );
    }

    let broken = home.path().join(".gemini/settings.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let refused = home.zend(&["register", "gemini"]);
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), "{ not json");
}

#[test]
fn register_claude_code_runs_claude_when_present_else_prints_the_command() {
    let mut home = ZenHome::new();
    home.env.push(("PATH".into(), "/usr/bin:/bin".into()));
    let shim = shim_bin().canonicalize().unwrap();
    let output = home.zend(&["register", "claude"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains(&format!(
            "claude mcp add --scope user zen -- {}",
            shim.display()
        )),
        "{}",
        stdout(&output)
    );

    let bin = home.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = home.path().join("claude.log");
    let script = bin.join("claude");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" > '{}'\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    home.env
        .push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    let output = home.zend(&["register", "claude-code"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        format!("mcp add --scope user zen -- {}", shim.display())
    );
}

#[test]
fn logs_prints_the_tail_of_the_newest_log() {
    let home = ZenHome::new();
    let empty = home.zend(&["logs"]);
    assert!(empty.status.success(), "{empty:?}");
    assert!(stdout(&empty).contains("no zend log"), "{empty:?}");

    let client = home.session();
    drop(client);
    home.stop_daemon();
    let all = stdout(&home.zend(&["logs", "-n", "1000"]));
    assert!(all.contains("zend serving"), "{all}");
    let last = stdout(&home.zend(&["logs", "-n", "1"]));
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(all.ends_with(&last), "{last}");
}
