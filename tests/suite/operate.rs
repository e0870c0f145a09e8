//! Operating zen: services, socket activation, client registration, logs, HTTP.

use crate::support::OutputWithin;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{ZenHome, ok_text, pid_from_version, shim_bin, zend_bin};

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
    let path = format!("{}:{}", bin.display(), crate::support::host_path());
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
        .output_within(crate::support::COMMAND_DEADLINE);
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
    let pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    assert_eq!(pid, daemon.id());
    let status: Value = serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["socket_path"], socket.to_string_lossy().as_ref());
    assert_eq!(status["auto_started"], false);

    assert!(crate::support::stop_child_daemon(&home, &mut daemon).success());
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
    // Wait until it answers, or a shim would race it and start its own zend.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while home.zend(&["status"]).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < until,
            "zend serve --service never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut client = home.session();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    assert!(zen_proto::paths::managed_marker(&home.socket()).is_file());
    assert!(crate::support::stop_child_daemon(&home, &mut daemon).success());
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
    // The tool timeout covers the longest model call: the Responses API's 1800 s + 60.
    assert!(
        text.contains(&format!(
            "[mcp_servers.zen]\ncommand = \"{shim}\"\nargs = []\ntool_timeout_sec = 1860\n\
             env = {{ ZEN_HOME = \"{}\" }}\n",
            home.path().display()
        )),
        "{text}"
    );
    // A slower model configured: registering again follows it.
    home.write_config(
        "models.yaml",
        "models:\n  slow:\n    provider: openai\n    timeout_secs: 3600\n",
    );
    assert!(home.zend(&["register", "codex"]).status.success());
    let text = std::fs::read_to_string(&codex).unwrap();
    assert!(text.contains("tool_timeout_sec = 3660\n"), "{text}");

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
        if client == "gemini" {
            assert_eq!(config["mcpServers"]["zen"]["timeout"], 3_660_000);
        }
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
            "claude mcp add --scope user zen -e ZEN_HOME={} -- {}",
            home.path().display(),
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
        format!(
            "mcp add --scope user zen -e ZEN_HOME={} -- {}",
            home.path().display(),
            shim.display()
        )
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

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The JSON-RPC message answering `id` in a JSON or SSE response body.
fn rpc_reply(body: &str, id: u64) -> Value {
    let candidates: Vec<Value> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(body).unwrap()]
    } else {
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .collect()
    };
    candidates
        .into_iter()
        .find(|m: &Value| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no reply to {id} in {body:?}"))
}

#[test]
fn http_endpoint_needs_the_token_rejects_foreign_origins_and_serves_tools() {
    let home = ZenHome::new();
    let token = stdout(&home.zend(&["http-token"])).trim().to_owned();
    assert_eq!(token.len(), 64, "{token}");
    assert_eq!(stdout(&home.zend(&["http-token"])).trim(), token, "stable");

    let port = free_port();
    let mut serve = home.command(&zend_bin());
    serve.args(["serve", "--http", &format!("127.0.0.1:{port}")]);
    let mut daemon = crate::support::spawn_until_ready(serve, "zend serve --http", || {
        crate::support::listening(port)
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}/mcp");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let post = |body: Value, session: Option<&str>| {
            let mut request = http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .bearer_auth(&token)
                .json(&body);
            if let Some(session) = session {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", "2025-06-18");
            }
            request
        };
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "zen-http-e2e", "version": "1.0"}}});

        let anonymous = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        let foreign = post(initialize.clone(), None)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403);

        let response = post(initialize, None).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let session = response
            .headers()
            .get("mcp-session-id")
            .expect("a session id")
            .to_str()
            .unwrap()
            .to_owned();
        let init = rpc_reply(&response.text().await.unwrap(), 1);
        assert_eq!(init["result"]["serverInfo"]["name"], "zen", "{init}");

        let initialized = post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(&session),
        )
        .send()
        .await
        .unwrap();
        assert!(initialized.status().is_success(), "{initialized:?}");

        let list = post(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
            Some(&session),
        )
        .send()
        .await
        .unwrap();
        let list = rpc_reply(&list.text().await.unwrap(), 2);
        assert!(
            list["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "version"),
            "{list}"
        );

        let call = post(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "version", "arguments": {}}}),
            Some(&session),
        )
        .send()
        .await
        .unwrap();
        let call = rpc_reply(&call.text().await.unwrap(), 3);
        assert_eq!(call["result"]["isError"], false, "{call}");
        let text = call["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(pid_from_version(text), daemon.id(), "{text}");

        // One zend session per HTTP session, named after the client.
        let status: Value =
            serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
        let sessions = status["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "{status}");
        assert_eq!(sessions[0]["client_name"], "zen-http-e2e");

        let closed = http
            .delete(&url)
            .bearer_auth(&token)
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        assert!(closed.status().is_success(), "{closed:?}");
    });
    let until = std::time::Instant::now() + crate::support::WAIT;
    loop {
        let status: Value =
            serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
        if status["sessions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the HTTP session stayed listed: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(crate::support::stop_child_daemon(&home, &mut daemon).success());
}

#[test]
fn http_refuses_foreign_hosts_and_origins_before_the_token_and_serves_allowed_ones() {
    let home = ZenHome::new();
    let token = stdout(&home.zend(&["http-token"])).trim().to_owned();
    let port = free_port();
    let mut serve = home.command(&zend_bin());
    serve.args([
        "serve",
        "--http",
        &format!("127.0.0.1:{port}"),
        "--http-allow-host",
        "zen.internal",
        "--http-allow-origin",
        "https://app.example",
    ]);
    let mut daemon = crate::support::spawn_until_ready(serve, "zend serve --http", || {
        crate::support::listening(port)
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let accepted = runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}/mcp");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "zen-http-gate", "version": "1.0"}}});
        // (Host, Origin, with the token) → the status and what the body says.
        let send = |host: String, origin: Option<&'static str>, with_token: bool| {
            let mut request = http
                .post(&url)
                .header("host", host)
                .header("accept", "application/json, text/event-stream")
                .json(&initialize);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if with_token {
                request = request.bearer_auth(&token);
            }
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let host_refused =
            "Host not allowed: zend serves loopback hosts only unless --http-allow-host names it";
        let origin_refused = "Origin not allowed: zend accepts loopback origins only unless --http-allow-origin names it";
        let loopback = format!("127.0.0.1:{port}");
        let refused: Vec<(String, Option<&str>, bool, &str)> = vec![
            // DNS rebinding: a foreign name for our address.
            (format!("evil.example:{port}"), None, true, host_refused),
            (
                format!("zen.internal.evil.example:{port}"),
                None,
                true,
                host_refused,
            ),
            // Refused before the token is looked at: a rebinding page learns nothing.
            (format!("evil.example:{port}"), None, false, host_refused),
            (loopback.clone(), Some("https://evil.example"), true, origin_refused),
            (loopback.clone(), Some("null"), true, origin_refused),
            (
                loopback.clone(),
                Some("https://app.example.evil.example"),
                false,
                origin_refused,
            ),
        ];
        for (host, origin, with_token, says) in refused {
            let (status, body) = send(host.clone(), origin, with_token).await;
            assert_eq!(status, 403, "Host {host}, Origin {origin:?}: {body}");
            assert_eq!(body.trim(), says, "Host {host}, Origin {origin:?}");
        }
        // Right Host and Origin, no token: the token is what is missing.
        let (status, body) = send(loopback.clone(), None, false).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("`zend http-token` shows it"), "{body}");

        let allowed: Vec<(String, Option<&str>)> = vec![
            (loopback.clone(), None),
            (format!("localhost:{port}"), Some("http://localhost:3000")),
            (format!("zen.internal:{port}"), None),
            (loopback.clone(), Some("https://app.example")),
            (loopback.clone(), Some("http://127.0.0.1:8080/")),
        ];
        for (host, origin) in &allowed {
            let (status, body) = send(host.clone(), *origin, true).await;
            assert_eq!(status, 200, "Host {host}, Origin {origin:?}: {body}");
            let init = rpc_reply(&body, 1);
            assert_eq!(init["result"]["serverInfo"]["name"], "zen", "{init}");
        }
        allowed.len()
    });

    // Only the accepted requests opened sessions.
    let status: Value = serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap();
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), accepted, "{status}");
    assert!(sessions.iter().all(|s| s["client_name"] == "zen-http-gate"));
    assert!(crate::support::stop_child_daemon(&home, &mut daemon).success());
}
