use crate::support::OutputWithin;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ZenHome, kill9, ok_text, pid_from_version, result_text};

#[test]
fn initialize_list_and_version_through_a_stripped_environment() {
    let home = ZenHome::new();
    let mut client = home.shim();
    let init = client.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "zen");
    assert!(
        init["result"]["instructions"]
            .as_str()
            .unwrap()
            .contains("continuation_id")
    );

    let names = client.tool_names();
    assert!(names.contains(&"version"), "{names:?}");

    let result = client.call_tool("version", json!({}));
    let text = result_text(&result);
    assert_eq!(result["isError"], false);
    assert!(
        text.contains(&format!("zen-shim: {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(&home.path().display().to_string()),
        "paths are the isolated ones: {text}"
    );
    assert!(client.close().success());
}

#[test]
fn two_sessions_share_one_daemon_and_closing_one_leaves_the_other() {
    let home = ZenHome::new();
    let mut first = home.session();
    let mut second = home.session();
    let pid_first = pid_from_version(&ok_text(&first.call_tool("version", json!({}))));
    let pid_second = pid_from_version(&ok_text(&second.call_tool("version", json!({}))));
    assert_eq!(pid_first, pid_second);

    assert!(first.close().success());
    let text = ok_text(&second.call_tool("version", json!({})));
    assert_eq!(pid_from_version(&text), pid_first);
    assert!(text.contains("sessions: 1 live"), "{text}");
    assert_eq!(home.zend_pids(), vec![pid_first]);
}

#[test]
fn eight_shims_started_at_once_leave_exactly_one_daemon() {
    let home = ZenHome::new();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let pids: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let barrier = barrier.clone();
                let home = &home;
                scope.spawn(move || {
                    barrier.wait();
                    let mut client = home.session();
                    let pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
                    assert!(client.close().success());
                    pid
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        pids.iter().all(|p| *p == pids[0]),
        "sessions reached different daemons: {pids:?}"
    );
    assert_eq!(home.zend_pids(), vec![pids[0]]);
}

#[test]
fn a_stale_socket_left_by_kill9_is_recovered_by_the_next_shim() {
    let home = ZenHome::new();
    let mut client = home.session();
    let old_pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    // No live shim, so nothing reconnects (and restarts zend) on its own;
    // shims that do are tested in `reliability`.
    assert!(client.close().success());
    kill9(old_pid);
    assert!(home.wait_no_daemon(Duration::from_secs(5)));
    assert!(home.socket().exists(), "kill -9 leaves the socket behind");

    let mut next = home.session();
    let new_pid = pid_from_version(&ok_text(&next.call_tool("version", json!({}))));
    assert_ne!(new_pid, old_pid);
    assert!(next.close().success());
}

#[test]
fn malformed_lines_get_json_rpc_errors_and_the_session_goes_on() {
    let home = ZenHome::new();
    let mut client = home.session();
    client.send_raw(b"{this is not json\n");
    let reply = client.recv();
    assert_eq!(reply["error"]["code"], -32700);
    assert_eq!(reply["id"], Value::Null);

    client.send_raw(b"\xff\xfe not utf-8\n");
    assert_eq!(client.recv()["error"]["code"], -32700);

    client.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}]\n");
    assert_eq!(client.recv()["error"]["code"], -32600);

    let unknown = client.request(
        "tools/call",
        json!({"name": "no-such-tool", "arguments": {}}),
    );
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no-such-tool") && message.contains("version"),
        "{message}"
    );

    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    assert!(client.close().success());
}

#[test]
fn status_json_lists_live_sessions_and_stop_ends_the_daemon() {
    let home = ZenHome::new();
    let mut client = home.session();
    let output = home.zend(&["status", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["running"], true);
    assert_eq!(status["auto_started"], true);
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{status}");
    assert_eq!(sessions[0]["client_name"], "zen-e2e");
    assert_eq!(sessions[0]["shim_pid"], client.pid());

    let table = String::from_utf8(home.zend(&["status"]).stdout).unwrap();
    assert!(
        table.contains("zen-e2e") && table.contains("1 live"),
        "{table}"
    );

    let pid = status["pid"].as_u64().unwrap() as u32;
    let stop = home.zend(&["stop"]);
    assert!(stop.status.success(), "{stop:?}");
    assert!(String::from_utf8_lossy(&stop.stdout).contains(&format!("stopped zend (pid {pid})")));
    assert!(home.zend_pids().is_empty());
    assert!(
        !home.socket().exists(),
        "zend removes the socket it created"
    );

    // The session that was cut is told why, on stderr, and the shim fails.
    assert!(!client.wait().success());
    assert!(client.stderr().contains("stopped"), "{}", client.stderr());

    let status = home.zend(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(3));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["running"], false);
}

#[test]
fn a_second_zend_serve_says_one_is_running_and_exits_0() {
    let home = ZenHome::new();
    let mut client = home.session();
    let pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    let second = home.zend(&["serve"]);
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already running") && stderr.contains(&pid.to_string()),
        "{stderr}"
    );
    assert_eq!(home.zend_pids(), vec![pid]);
}

#[test]
fn an_auto_started_daemon_exits_when_idle() {
    let home = ZenHome::new();
    home.write_config("server.yaml", "idle_timeout_secs: 1\n");
    let mut client = home.session();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    assert_eq!(home.zend_pids().len(), 1);
    assert!(client.close().success());
    assert!(
        home.wait_no_daemon(Duration::from_secs(15)),
        "zend still running after the idle timeout"
    );
}

#[test]
fn no_autostart_reports_clearly_when_nothing_answers() {
    let mut home = ZenHome::new();
    home.env.push(("ZEN_NO_AUTOSTART".into(), "1".into()));
    let output = home
        .command(&crate::support::shim_bin())
        .stdin(std::process::Stdio::null())
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing but protocol on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ZEN_NO_AUTOSTART") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(home.zend_pids().is_empty());
}

/// scripts/install.sh links the shim statically on Linux with glibc. That is only sound while
/// the shim calls nothing in glibc that loads code at run time (NSS for user, group and host
/// lookups; dlopen; iconv): a static binary would then need the shared libraries of the glibc
/// it was built with. The dynamically linked test build shows what the shim imports.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_shim_imports_nothing_that_a_static_link_cannot_serve() {
    let binary = std::fs::read(crate::support::shim_bin()).unwrap();
    let contains = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    // The check itself: names the shim does import are found this way.
    for imported in ["connect", "epoll_wait", "setsid"] {
        let name = format!("\0{imported}\0");
        assert!(
            contains(name.as_bytes()),
            "{imported} not found: the check is broken"
        );
    }
    let loads_code = [
        "getaddrinfo",
        "getnameinfo",
        "gethostbyname",
        "gethostbyname_r",
        "gethostbyaddr",
        "getpwnam",
        "getpwnam_r",
        "getpwuid",
        "getpwuid_r",
        "getgrnam",
        "getgrnam_r",
        "getgrgid",
        "getgrgid_r",
        "getgrouplist",
        "initgroups",
        "getservbyname",
        "getlogin",
        "dlopen",
        "iconv_open",
    ];
    let found: Vec<_> = loads_code
        .iter()
        // Without the leading NUL: the linker may store a name as the tail of a longer one.
        .filter(|name| contains(format!("{name}\0").as_bytes()))
        .collect();
    assert!(
        found.is_empty(),
        "zen-shim now imports {found:?}, which a statically linked shim (scripts/install.sh) \
         cannot serve: keep such lookups in zend"
    );
}
