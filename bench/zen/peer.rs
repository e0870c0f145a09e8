//! The peer: `consult-llm-mcp` from npm. Its npm package is a launcher script
//! whose platform package holds a static Rust binary; we fetch that binary once
//! with `npm pack` (into target/bench-peer/, reused by later runs) and run it
//! directly, so no Node or shell start-up is counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::procs::run_with_timeout;

pub const PACKAGE: &str = "consult-llm-mcp";
const NPM_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Peer {
    pub binary: PathBuf,
    pub version: String,
}

/// The cached binary, else fetches it with npm. Err says why the row is skipped.
pub fn fetch(cache: &Path) -> Result<Peer, String> {
    if std::env::var("ZEN_BENCH_NO_PEER").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err("ZEN_BENCH_NO_PEER is set".into());
    }
    let platform = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-x64",
        ("linux", "aarch64") => "linux-arm64",
        ("macos", "x86_64") => "darwin-x64",
        ("macos", "aarch64") => "darwin-arm64",
        (os, arch) => return Err(format!("{PACKAGE} has no binary for {os}/{arch}")),
    };
    // Reuse any version already fetched (one npm round trip per checkout, not per run).
    if let Ok(entries) = std::fs::read_dir(cache) {
        let mut cached: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.path().join(PACKAGE),
                )
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        cached.sort();
        if let Some((version, binary)) = cached.pop() {
            return Ok(Peer { binary, version });
        }
    }
    let mut view = Command::new("npm");
    view.args(["view", PACKAGE, "version"]);
    let version = run_with_timeout(view, NPM_TIMEOUT)
        .map_err(|e| format!("npm is unavailable or cannot see {PACKAGE}: {e}"))?
        .trim()
        .to_owned();
    if version.is_empty() || version.contains(char::is_whitespace) {
        return Err(format!("npm view {PACKAGE} gave no version"));
    }
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = format!("{PACKAGE}-{platform}@{version}");
    let mut pack = Command::new("npm");
    pack.args(["pack", &spec, "--silent", "--pack-destination"])
        .arg(work.path());
    let tarball =
        run_with_timeout(pack, NPM_TIMEOUT).map_err(|e| format!("npm pack {spec} failed: {e}"))?;
    let tarball = work
        .path()
        .join(tarball.trim().lines().last().unwrap_or(""));
    let mut untar = Command::new("tar");
    untar.arg("xzf").arg(&tarball).arg("-C").arg(work.path());
    run_with_timeout(untar, NPM_TIMEOUT).map_err(|e| format!("cannot unpack {spec}: {e}"))?;
    let unpacked = work.path().join("package").join(PACKAGE);
    if !unpacked.is_file() {
        return Err(format!("{spec} holds no {PACKAGE} binary"));
    }
    let dir = cache.join(&version);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let binary = dir.join(PACKAGE);
    std::fs::copy(&unpacked, &binary).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    Ok(Peer { binary, version })
}

/// The peer with a stripped environment: a fake OpenAI key (it refuses to
/// start without one model), no update check, a private HOME.
pub fn command(peer: &Peer, home: &Path) -> Command {
    let mut command = Command::new(&peer.binary);
    command
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", crate::mock::API_KEY)
        .env("CONSULT_LLM_NO_UPDATE_CHECK", "1");
    command
}

/// The peer calling the mock: its HTTPS requests to the OpenAI API go through the mock's
/// proxy (`HTTPS_PROXY`, which its HTTP client honours) and trust the run's CA (`SSL_CERT_FILE`,
/// which its platform verifier reads on Linux), so they reach the mock and nothing else.
pub fn command_with_mock(peer: &Peer, home: &Path, tls: &crate::mock::TlsMock) -> Command {
    let mut command = command(peer, home);
    command
        .env("HTTPS_PROXY", &tls.proxy_url)
        .env("SSL_CERT_FILE", &tls.ca_file);
    command
}
