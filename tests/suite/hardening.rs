//! What keeps zend's user the only one it serves and the only one who reads
//! what it keeps: private files whatever the umask, the process hardened,
//! limits on what a peer can make it hold (SECURITY.md's promises).

use crate::support::OutputWithin;
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
    let mut serve = home.command(Path::new("sh"));
    serve
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve \"$@\"")
        .arg(zend_bin())
        .args(args);
    crate::support::spawn_until_ready(serve, "zend serve under umask 022", || {
        home.zend(&["status"]).status.code() == Some(0)
    })
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
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
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
    crate::support::stop_child_daemon(&home, &mut daemon);

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
    crate::support::stop_child_daemon(&home, &mut daemon);

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
    const KEY: &str = "sk-abcde-éééééééé-pasted-with-accents";
    // The upstream echoes the key it was sent, as some do in their errors.
    let provider = RawServer::start(|_| {
        let body = format!(r#"{{"error":{{"message":"invalid x-api-key {KEY}"}}}}"#);
        format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    });
    let key = KEY;
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
    assert!(!text.contains("ééé"), "the key is in the error: {text}");
    assert!(text.contains("invalid x-api-key"), "{text}");
    // The session and zend are still there.
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn remote_http_needs_tls() {
    let home = ZenHome::new();
    let (cert, _, _) = self_signed(home.path());
    let cert = cert.display().to_string();
    for tls in [&[][..], &["--http-cert", cert.as_str()][..]] {
        let stderr = refused_serve(&home, tls);
        assert!(stderr.contains("--http-key"), "{stderr}");
    }
}

/// `zend serve --http ... --http-allow-remote TLS`, which must exit refused; its stderr.
fn refused_serve(home: &ZenHome, tls: &[&str]) -> String {
    let port = free_port();
    let mut daemon = home
        .command(&zend_bin())
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--http-allow-remote",
        ])
        .args(tls)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = daemon.kill();
            let _ = daemon.wait();
            home.stop_daemon();
            panic!("zend served remote HTTP without TLS");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

/// A self-signed certificate for 127.0.0.1, written as PEM files in `dir`.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified.cert.pem())
}

#[test]
fn https_serves_with_a_rotatable_token_and_refusals_are_logged_once_a_minute() {
    let home = ZenHome::new();
    let (cert, key, pem) = self_signed(home.path());
    let old = stdout_of(&home.zend(&["http-token"]));
    let port = free_port();
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let mut daemon = serve_under_umask_022(
        &home,
        &[
            "--http",
            &format!("127.0.0.1:{port}"),
            "--http-allow-remote",
            "--http-cert",
            &cert,
            "--http-key",
            &key,
        ],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap();
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "zen-https-e2e", "version": "1.0"}}});
        let post = |client: &reqwest::Client, scheme: &str, token: &str| {
            client
                .post(format!("{scheme}://127.0.0.1:{port}/mcp"))
                .header("accept", "application/json, text/event-stream")
                .bearer_auth(token)
                .json(&initialize)
                .send()
        };
        let mut statuses = Vec::new();
        statuses.push(post(&https, "https", &old).await.unwrap().status().as_u16());
        let plain = post(&reqwest::Client::new(), "http", &old).await;
        statuses.push(plain.map(|r| r.status().as_u16()).unwrap_or(0));
        let new = stdout_of(&home.zend(&["http-token", "--rotate"]));
        assert_ne!(new, old);
        assert_eq!(new.len(), 64, "{new}");
        statuses.push(post(&https, "https", &new).await.unwrap().status().as_u16());
        for _ in 0..5 {
            statuses.push(post(&https, "https", &old).await.unwrap().status().as_u16());
        }
        statuses
    });
    crate::support::stop_child_daemon(&home, &mut daemon);
    assert_eq!(
        statuses,
        [200, 0, 200, 401, 401, 401, 401, 401],
        "https, plain http, new token, old token x5"
    );
    let mut log = String::new();
    for entry in std::fs::read_dir(home.path().join("state"))
        .unwrap()
        .flatten()
    {
        log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    let refusal_lines = log.lines().filter(|l| l.contains("refused")).count();
    assert_eq!(refusal_lines, 1, "{log}");
    assert_eq!(
        std::fs::metadata(home.config_dir().join("http-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

/// Opens a `Session` straight to the zend of `home` (no shim: nothing drops an
/// oversized line before zend sees it), sends `messages` as frames, half-closes,
/// and returns every message zend answered before ending the stream.
fn raw_session(home: &ZenHome, messages: Vec<Vec<u8>>) -> Vec<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = zen_proto::paths::Socket {
            path: home.socket(),
            chosen: zen_proto::paths::Chosen::ByUser,
        };
        let stream = zen_proto::client::try_connect(&socket)
            .await
            .unwrap()
            .expect("zend is listening");
        let mut client = zen_proto::client::handshake(stream).await.unwrap();
        let frames = tokio_stream::iter(
            messages
                .into_iter()
                .map(|json| zen_proto::v1::Frame { json: json.into() }),
        );
        let mut answers = client.session(frames).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Ok(Some(frame)) = answers.message().await {
            out.push(serde_json::from_slice(&frame.json).unwrap());
        }
        out
    })
}

#[test]
fn zend_answers_an_oversized_frame_invalid_request_and_the_session_goes_on() {
    let home = ZenHome::new();
    // Start zend (and check the usual way in works) before speaking gRPC to it.
    let mut client = home.session();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    let message = |value: serde_json::Value| value.to_string().into_bytes();
    let huge = format!(
        r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"version","arguments":{{"padding":"{}"}}}},"id":2}}"#,
        "x".repeat(17 << 20)
    );
    let answers = raw_session(
        &home,
        vec![
            message(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "zen-grpc-e2e", "version": "1.0"}}}),
            ),
            message(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            huge.into_bytes(),
            message(json!({"jsonrpc": "2.0", "id": 3, "method": "ping"})),
        ],
    );
    let by_id = |id: u64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {id}"))
    };
    assert_eq!(by_id(1)["result"]["serverInfo"]["name"], "zen");
    let error = &by_id(2)["error"];
    assert_eq!(error["code"], -32600, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most"),
        "{error}"
    );
    assert_eq!(by_id(3)["result"], json!({}), "the session ended");
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
}

#[test]
fn a_service_zend_writes_nothing_to_the_managers_stderr_file() {
    let mut home = ZenHome::new();
    home.env.push(("ZEN_LOG".into(), "trace".into()));
    // launchd's StandardErrorPath: a file nobody rotates.
    let stderr_file = home.path().join("launchd.stderr.log");
    let mut daemon = home
        .command(&zend_bin())
        .args(["serve", "--service"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let until = Instant::now() + WAIT;
    while home.zend(&["status"]).status.code() != Some(0) {
        assert!(
            Instant::now() < until,
            "zend serve --service never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut client = home.session();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    drop(client);
    crate::support::stop_child_daemon(&home, &mut daemon);
    let log = String::from_utf8_lossy(&home.zend(&["logs", "-n", "1000"]).stdout).into_owned();
    assert!(log.contains("zend serving"), "{log}");
    assert_eq!(std::fs::read_to_string(&stderr_file).unwrap(), "");
}

#[test]
fn sessions_beyond_max_sessions_are_refused_with_a_message() {
    let home = ZenHome::new();
    home.write_config("server.yaml", "max_sessions: 2\n");
    let first = home.session();
    let mut second = home.session();
    let mut third = home.shim();
    third.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "zen-e2e", "version": "1.0"}}}),
    );
    let status = third.wait();
    assert!(!status.success());
    assert!(
        third.stderr().contains("max_sessions"),
        "{}",
        third.stderr()
    );
    drop(first);
    // Once one is gone, a new session is served.
    let until = Instant::now() + WAIT;
    loop {
        let mut next = home.shim();
        next.send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "zen-e2e", "version": "1.0"}}}),
        );
        if next.try_recv(WAIT).is_some() {
            break;
        }
        assert!(Instant::now() < until, "no session after one closed");
    }
    assert_eq!(second.call_tool("version", json!({}))["isError"], false);
}

#[test]
fn register_edits_a_symlinked_config_where_it_points_and_keeps_one_backup() {
    let home = ZenHome::new();
    let dotfiles = home.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let real = dotfiles.join("cursor.json");
    let before = "{\n  \"mcpServers\": {\"other\": {\"command\": \"other\"}}\n}\n";
    std::fs::write(&real, before).unwrap();
    let link = home.path().join(".cursor/mcp.json");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();

    // `zend register <client>` under umask 022, which must succeed.
    let register = |client: &str| {
        let output = home
            .command(Path::new("sh"))
            .arg("-c")
            .arg(format!("umask 022; exec \"$0\" register {client}"))
            .arg(zend_bin())
            .output_within(crate::support::COMMAND_DEADLINE);
        assert!(output.status.success(), "{output:?}");
    };
    // The names of `dotfiles`' entries that contain `part`.
    let named = |part: &str| -> Vec<String> {
        std::fs::read_dir(&dotfiles)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(part))
            .collect()
    };
    register("cursor");

    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(config["mcpServers"]["other"]["command"], "other");
    assert!(config["mcpServers"]["zen"].is_object(), "{config}");
    let backup = dotfiles.join("cursor.json.zen-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), before);
    assert_eq!(mode(&backup), 0o600);
    let leftovers = named(".tmp");
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Changed again (zen's entry removed by hand): still one backup, of the last version.
    let edited = "{\n  \"mcpServers\": {\"other\": {\"command\": \"edited\"}}\n}\n";
    std::fs::write(&real, edited).unwrap();
    register("cursor");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), edited);
    assert_eq!(named("zen-backup"), ["cursor.json.zen-backup"]);

    // A config zen creates is written 0600 whatever the umask (its temporary file was).
    register("gemini");
    assert_eq!(mode(&home.path().join(".gemini/settings.json")), 0o600);
}

#[test]
fn a_socket_directory_the_user_named_is_checked_never_chmodded() {
    let mut home = ZenHome::new();
    let named = home.path().join("mine");
    std::fs::create_dir_all(&named).unwrap();
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o755)).unwrap();
    home.env.push((
        "ZEN_SOCKET".into(),
        named.join("zend.sock").display().to_string(),
    ));
    let mut daemon = serve_under_umask_022(&home, &[]);
    let mut client = home.session();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    drop(client);
    crate::support::stop_child_daemon(&home, &mut daemon);
    assert_eq!(
        mode(&named),
        0o755,
        "zend changed a directory the user named"
    );

    // One others may write to is refused, and left as it was.
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = home.zend(&["serve"]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("written by other users"), "{stderr}");
    assert_eq!(mode(&named), 0o777);
}

/// On Linux zend is non-dumpable: the kernel gives its `/proc` entries to
/// root, so no process of its user (short of root) can read its memory or
/// environment, or attach a debugger. Seen from root, with zend run as another
/// uid (a dumpable zend's entries would be that uid's).
#[cfg(target_os = "linux")]
#[test]
fn zend_is_not_dumpable() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const OTHER_UID: u32 = 65534;
    let home = ZenHome::new();
    // The test's own new directory is owned by its effective uid.
    if std::fs::metadata(home.path()).unwrap().uid() != 0 {
        eprintln!("skipped: run the tests as root to run zend as uid {OTHER_UID}");
        return;
    }
    for dir in [home.path().to_path_buf(), home.config_dir()] {
        std::os::unix::fs::chown(&dir, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    }
    let mut serve = home.command(&zend_bin());
    serve.arg("serve").uid(OTHER_UID).gid(OTHER_UID);
    let mut daemon = crate::support::spawn_until_ready(serve, "zend serve as uid 65534", || {
        home.socket().exists()
    });
    // Files under /proc/<pid> are given their owner when first looked up.
    let owners: Vec<u32> = ["status", "environ", "mem"]
        .iter()
        .map(|name| {
            std::fs::metadata(format!("/proc/{}/{name}", daemon.id()))
                .unwrap()
                .uid()
        })
        .collect();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    crate::support::wait_within(&mut daemon, WAIT, "zend serve");
    assert_eq!(
        owners,
        [0, 0, 0],
        "zend's /proc entries belong to uid {OTHER_UID}: it is dumpable"
    );
}
