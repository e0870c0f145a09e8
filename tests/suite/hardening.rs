//! What keeps zend's user the only one it serves and the only one who reads
//! what it keeps: private files whatever the umask, the process hardened,
//! limits on what a peer can make it hold (SECURITY.md's promises).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Instant;

use serde_json::json;

use crate::support::{WAIT, ZenHome, zend_bin};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `zend serve ARGS` started under umask 022 (the usual login umask), once it answers.
fn serve_under_umask_022(home: &ZenHome, args: &[&str]) -> Child {
    let mut daemon = home
        .command(Path::new("sh"))
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve \"$@\"")
        .arg(zend_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + WAIT;
    while home.zend(&["status"]).status.code() != Some(0) {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("zend serve exited early: {status}");
        }
        assert!(Instant::now() < until, "zend serve never answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    daemon
}

/// `zend stop` for a zend that is our child (reaped while stop waits).
fn stop_child(home: &ZenHome, daemon: &mut Child) {
    let stop = home
        .command(&zend_bin())
        .arg("stop")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    daemon.wait().unwrap();
    let stop = stop.wait_with_output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
}

/// Every file under `dir` (a few levels deep) with its mode.
fn files_under(dir: &Path, depth: usize, out: &mut Vec<(std::path::PathBuf, u32)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push((path.clone(), mode(&path)));
        if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            files_under(&path, depth - 1, out);
        }
    }
}

#[test]
fn what_zend_writes_is_private_whatever_the_umask_and_old_files_are_tightened() {
    let home = ZenHome::new();
    // What an older zend left under umask 022: a readable log, store and key file.
    let state = home.path().join("state");
    let data = home.path().join("data");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let old_log = state.join("zend.2020-01-01.log");
    std::fs::write(&old_log, "an old line\n").unwrap();
    std::fs::write(home.config_dir().join(".env"), "OPENAI_API_KEY=sk-x\n").unwrap();
    for path in [&old_log, &home.config_dir().join(".env")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for dir in [&state, &data, &home.config_dir()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = serve_under_umask_022(&home, &["--http", &format!("127.0.0.1:{port}")]);
    let mut client = home.session();
    client.call_tool("version", json!({}));
    drop(client);

    let mut found = Vec::new();
    for dir in ["data", "state", "run"] {
        let dir = home.path().join(dir);
        found.push((dir.clone(), mode(&dir)));
        files_under(&dir, 2, &mut found);
    }
    for name in [".env", "http-token"] {
        let path = home.config_dir().join(name);
        found.push((path.clone(), mode(&path)));
    }
    found.push((home.config_dir(), mode(&home.config_dir())));
    stop_child(&home, &mut daemon);

    let names: Vec<String> = found.iter().map(|(p, _)| p.display().to_string()).collect();
    for expected in ["store.redb", "zend.lock", "zend.sock", "http-token", ".log"] {
        assert!(
            names.iter().any(|n| n.ends_with(expected)),
            "no {expected} among {names:?}"
        );
    }
    let loose: Vec<String> = found
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(loose.is_empty(), "readable by others: {loose:?}");
}

#[test]
fn zend_serves_from_root_without_core_dumps() {
    let home = ZenHome::new();
    let mut daemon = serve_under_umask_022(&home, &[]);
    let pid = daemon.id();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    stop_child(&home, &mut daemon);

    assert_eq!(cwd.ok().as_deref(), Some(Path::new("/")));
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, ["0", "0"], "{limits}");
}

/// A one-thread HTTP/1.1 server on loopback that answers every request with
/// `answer` and keeps what it was sent (head and body, as text).
struct RawServer {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawServer {
    fn start(answer: impl Fn(u16) -> String + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut text = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    text.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                text.push_str(&String::from_utf8_lossy(&body));
                record.lock().unwrap().push(text);
                let _ = stream.write_all(answer(port).as_bytes());
            }
        });
        Self { port, seen }
    }
}

#[test]
fn provider_keys_never_follow_a_redirect_to_another_origin() {
    let elsewhere = RawServer::start(|_| {
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .into()
    });
    let target = format!("http://127.0.0.1:{}/v1/messages", elsewhere.port);
    let provider = RawServer::start(move |_| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    });
    let mut home = ZenHome::new();
    home.env
        .push(("ANTHROPIC_API_KEY".into(), crate::support::FAKE_KEY.into()));
    home.env.push((
        "ANTHROPIC_BASE_URL".into(),
        format!("http://127.0.0.1:{}", provider.port),
    ));
    home.write_config("models.yaml", "settings:\n  max_retries: 0\n");
    let mut client = home.session();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "hello", "model": "claude-sonnet-4-5"}),
    );
    drop(client);

    assert_eq!(
        provider.seen.lock().unwrap().len(),
        1,
        "the provider was asked once"
    );
    let followed = elsewhere.seen.lock().unwrap().clone();
    assert!(
        followed
            .iter()
            .all(|r| !r.contains(crate::support::FAKE_KEY)),
        "the key went to the other origin: {followed:?}"
    );
    assert!(
        followed.is_empty(),
        "the redirect was followed: {followed:?}"
    );
    let text = crate::support::result_text(&result);
    assert_eq!(result["isError"], true, "{result}");
    assert!(text.contains("redirected"), "{text}");
    assert!(!text.contains(crate::support::FAKE_KEY), "{text}");
}

#[test]
fn a_key_with_non_ascii_characters_gets_a_clear_error_not_a_crash() {
    let provider = RawServer::start(|_| {
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .into()
    });
    let key = "sk-abcde-éééééééé-pasted-with-accents";
    let mut home = ZenHome::new();
    home.env.push(("ANTHROPIC_API_KEY".into(), key.into()));
    home.env.push((
        "ANTHROPIC_BASE_URL".into(),
        format!("http://127.0.0.1:{}", provider.port),
    ));
    home.write_config("models.yaml", "settings:\n  max_retries: 0\n");
    let mut client = home.session();
    let result = client.call_tool(
        "chat",
        json!({"prompt": "hello", "model": "claude-sonnet-4-5"}),
    );
    let text = crate::support::result_text(&result);
    assert_eq!(result["isError"], true, "{result}");
    assert!(!text.contains("ééé"), "{text}");
    assert!(
        text.contains("header has a value HTTP cannot carry"),
        "{text}"
    );
    // The session and zend are still there.
    client.call_tool("version", json!({}));
}
