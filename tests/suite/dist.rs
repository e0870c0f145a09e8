//! Installing zen from packages: the npm package's one command `zen-mcp`, what
//! `zend register` writes when zend runs from a package runner's cache, `zend version
//! --check`, and (opt-in, `ZEN_TEST_DIST=1`) the wheel and npm packages built by
//! `scripts/dist.sh`, installed into fresh prefixes and used with no Rust toolchain.

use crate::support::OutputWithin;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{
    McpClient, ZenHome, ok_text, pid_from_version, result_text, shim_bin, zend_bin,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Puts `from` at `to` (a hard link where the file system allows it: the debug
/// zend is large).
fn place(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn zen_mcp_with_arguments_is_zend_and_without_them_the_shim() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "answered through zen-mcp".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let bin = home.path().join("pkg/bin");
    place(&shim_bin(), &bin.join("zen-mcp"));
    place(&zend_bin(), &bin.join("zend"));

    let version = home
        .command(&bin.join("zen-mcp"))
        .arg("version")
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(version.status.success(), "{}", show(&version));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("zend {}", env!("CARGO_PKG_VERSION"))
    );

    let mut client = McpClient::spawn(home.command(&bin.join("zen-mcp")));
    client.initialize();
    let result = client.call_tool("chat", json!({"prompt": "hello", "model": "gpt-5"}));
    assert_eq!(result["isError"], json!(false), "{result}");
    assert!(result_text(&result).contains("answered through zen-mcp"));
    assert!(client.close().success());
    home.stop_daemon();
}

#[test]
fn register_from_a_package_runners_cache_names_the_runner_not_the_cache() {
    let home = ZenHome::new();
    let cached = home.path().join(".npm/_npx/5e3a/node_modules/zen-mcp/bin");
    place(&zend_bin(), &cached.join("zend"));
    place(&shim_bin(), &cached.join("zen-shim"));
    let output = home
        .command(&cached.join("zend"))
        .args(["register", "codex", "--print"])
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(output.status.success(), "{}", show(&output));
    let printed = text(&output.stdout);
    assert!(
        printed.contains("command = \"npx\"") && printed.contains("args = [\"-y\", \"zen-mcp\"]"),
        "{printed}"
    );
    assert!(
        !printed.contains("_npx"),
        "the cache path leaked: {printed}"
    );

    // Installed anywhere else, the entry is the shim's absolute path.
    let installed = home.path().join("opt/zen/bin");
    place(&zend_bin(), &installed.join("zend"));
    place(&shim_bin(), &installed.join("zen-shim"));
    let output = home
        .command(&installed.join("zend"))
        .args(["register", "gemini", "--print"])
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(output.status.success(), "{}", show(&output));
    let shim = installed.join("zen-shim").canonicalize().unwrap();
    assert!(
        text(&output.stdout).contains(&format!("\"command\": \"{}\"", shim.display())),
        "{}",
        show(&output)
    );
}

/// A one-route HTTP server on loopback answering every GET with `status` and
/// `body`, counting the connections it accepted.
fn release_feed(status: &'static str, body: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/repos/zen-mcp/zen/releases/latest",
        listener.local_addr().unwrap()
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, hits)
}

#[test]
fn version_check_asks_the_release_feed_only_when_asked() {
    let home = ZenHome::new();
    let (url, hits) = release_feed(
        "200 OK",
        json!({"tag_name": "v99.1.0", "html_url": "https://example.invalid/r/99.1.0"}).to_string(),
    );
    let run = |args: &[&str], url: &str| {
        home.command(&zend_bin())
            .args(args)
            .env("ZEN_RELEASES_URL", url)
            .output_within(crate::support::COMMAND_DEADLINE)
    };

    let plain = run(&["version"], &url);
    assert!(plain.status.success(), "{}", show(&plain));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "plain `version` used the network"
    );

    let newer = run(&["version", "--check"], &url);
    assert!(newer.status.success(), "{}", show(&newer));
    assert!(
        text(&newer.stdout).contains("99.1.0 is out (https://example.invalid/r/99.1.0)"),
        "{}",
        show(&newer)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (same, _) = release_feed(
        "200 OK",
        json!({"tag_name": format!("v{}", env!("CARGO_PKG_VERSION"))}).to_string(),
    );
    let current = run(&["version", "--check"], &same);
    assert!(current.status.success(), "{}", show(&current));
    assert!(
        text(&current.stdout).contains("is up to date"),
        "{}",
        show(&current)
    );

    let (missing, _) = release_feed("404 Not Found", "{}".into());
    let failed = run(&["version", "--check"], &missing);
    assert!(!failed.status.success(), "{}", show(&failed));
    assert!(
        text(&failed.stderr).contains("cannot read the release feed")
            && text(&failed.stderr).contains("ZEN_RELEASES_URL"),
        "{}",
        show(&failed)
    );
}

/// The repository root (the e2e target runs from `daemon/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// How long `scripts/dist.sh` (release builds of both binaries) may take.
const BUILD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// How long a venv or an offline install from local files may take.
const INSTALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn have(program: &str) -> bool {
    crate::support::try_output_within(
        Command::new(program).arg("--version"),
        crate::support::COMMAND_DEADLINE,
    )
    .is_ok_and(|o| o.status.success())
}

/// PATH for the installed binaries: the prefix's bin and the system's, no cargo.
fn no_rust_path(bin: &Path) -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// What a user does after a packaged install: register, a chat call, status.
fn use_installed(bin: &Path, launcher: &[&str]) {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "answered by the packaged zen".into(),
        ..Behaviour::default()
    });
    let mut home = ZenHome::with_mock(&mock);
    home.env.push(("PATH".into(), no_rust_path(bin)));
    let which = Command::new("sh")
        .args(["-c", "command -v cargo rustc || true"])
        .env_clear()
        .env("PATH", no_rust_path(bin))
        .output_within(crate::support::COMMAND_DEADLINE);
    assert_eq!(
        text(&which.stdout).trim(),
        "",
        "a Rust toolchain is on PATH"
    );

    let register = home
        .command(&bin.join(launcher[0]))
        .args(&launcher[1..])
        .args(["register", "cursor"])
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(register.status.success(), "{}", show(&register));
    let cursor = std::fs::read_to_string(home.path().join(".cursor/mcp.json")).unwrap();
    assert!(cursor.contains("\"zen\""), "{cursor}");

    let mut client = McpClient::spawn(home.command(&bin.join("zen-shim")));
    client.initialize();
    let result = client.call_tool("chat", json!({"prompt": "hi", "model": "gpt-5"}));
    assert!(
        ok_text(&result).contains("answered by the packaged zen"),
        "{result}"
    );
    let old = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    assert!(client.close().success());

    // An upgrade through the package manager: the next, newer shim makes the
    // auto-started zend retire (its sessions are over) and a new one serve.
    let mut newer = home.command(&bin.join("zen-shim"));
    newer.env("ZEN_SHIM_VERSION_OVERRIDE", "99.0.0");
    let mut newer = McpClient::spawn(newer);
    newer.initialize();
    let response = newer.request("tools/call", json!({"name": "version", "arguments": {}}));
    let now = if response["error"]["code"] == -32603 {
        pid_from_version(&ok_text(&newer.call_tool("version", json!({}))))
    } else {
        pid_from_version(&result_text(&response["result"]))
    };
    assert_ne!(old, now, "the old zend kept serving a newer shim");
    assert!(newer.close().success());

    let status = home
        .command(&bin.join("zend"))
        .arg("status")
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(status.status.success(), "{}", show(&status));
    assert!(text(&status.stdout).contains("gpt-5"), "{}", show(&status));
    home.stop_daemon();
}

#[test]
fn packaged_installs_work_without_a_rust_toolchain() {
    if std::env::var_os("ZEN_TEST_DIST").is_none() {
        eprintln!(
            "skipped: set ZEN_TEST_DIST=1 to build the wheel and npm packages (release build, \
             minutes) and install them into fresh prefixes"
        );
        return;
    }
    for tool in ["maturin", "npm", "python3"] {
        if !have(tool) {
            eprintln!("skipped: {tool} is not installed (pip install maturin; Node.js for npm)");
            return;
        }
    }
    // ZEN_DIST_DIR: test packages already built (the release workflow's own), not a new build.
    let dist = match std::env::var_os("ZEN_DIST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let built = Command::new(repo().join("scripts/dist.sh"))
                .args(["--wheel", "--npm"])
                .current_dir(repo())
                .output_within(BUILD_DEADLINE);
            assert!(built.status.success(), "{}", show(&built));
            repo().join("target/dist")
        }
    };
    let prefix = tempfile::tempdir().unwrap();

    // PyPI: a fresh virtual environment, the wheel from the file, no index.
    let venv = prefix.path().join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output_within(INSTALL_DEADLINE);
    assert!(made.status.success(), "{}", show(&made));
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("dist.sh made no wheel");
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--no-index", "--quiet"])
        .arg(&wheel)
        .output_within(INSTALL_DEADLINE);
    assert!(pip.status.success(), "{}", show(&pip));
    use_installed(&venv.join("bin"), &["zend"]);

    // npm: the platform package and the main one from their tarballs, offline.
    let npm_prefix = prefix.path().join("npm");
    let tarballs: Vec<PathBuf> = std::fs::read_dir(dist.join("npm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .collect();
    assert_eq!(tarballs.len(), 2, "{tarballs:?}");
    let npm = Command::new("npm")
        .args([
            "install",
            "--global",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&npm_prefix)
        .args(&tarballs)
        .env("npm_config_registry", "http://127.0.0.1:9/")
        .output_within(INSTALL_DEADLINE);
    assert!(npm.status.success(), "{}", show(&npm));
    let bin = npm_prefix.join("bin");
    // postinstall replaced the Node launchers with the native binaries.
    let head = std::fs::read(bin.join("zen-mcp")).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "zen-mcp is still the Node launcher");
    use_installed(&bin, &["zen-mcp"]);
}
