//! `zend version [--check]`: this zend's version; with `--check`, and only then, whether a
//! newer release is out — one GET of the release feed. Nothing else in zen asks the network
//! about releases: upgrades are the package manager's job (npm, pip/uv, cargo).

use std::io::Write;
use std::time::Duration;

use super::CliError;

/// Where `--check` reads the newest release (GitHub's "latest release" document, or anything
/// that answers with a JSON object holding `tag_name`); tests point it at a local mock.
pub const RELEASES_URL_ENV: &str = "ZEN_RELEASES_URL";
pub const DEFAULT_RELEASES_URL: &str = "https://api.github.com/repos/zen-mcp/zen/releases/latest";

const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(check: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let current = env!("CARGO_PKG_VERSION");
    if !check {
        writeln!(out, "zend {current}")?;
        return Ok(0);
    }
    let url = std::env::var(RELEASES_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_RELEASES_URL.to_owned());
    let feed = crate::providers::fetch_json(&url, CHECK_TIMEOUT)
        .await
        .map_err(|e| {
            CliError::Query(format!(
                "cannot read the release feed ({e}); check the network, or set {RELEASES_URL_ENV}"
            ))
        })?;
    let Some(tag) = feed.get("tag_name").and_then(|t| t.as_str()) else {
        return Err(CliError::Query(format!(
            "the release feed at {url} names no release (no `tag_name`)"
        )));
    };
    let latest = tag.trim_start_matches('v');
    match (parse(latest), parse(current)) {
        (Some(l), Some(c)) if l > c => {
            writeln!(
                out,
                "zend {current}: {latest} is out{}; upgrade the way you installed zen \
                 (npm i -g zen-mcp, pipx upgrade zen-mcp, uv tool upgrade zen-mcp, or \
                 scripts/install.sh); a running zend retires once its sessions end",
                feed.get("html_url")
                    .and_then(|u| u.as_str())
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            )?;
        }
        (Some(_), Some(_)) => writeln!(out, "zend {current} is up to date (newest: {latest})")?,
        _ => {
            return Err(CliError::Query(format!(
                "cannot compare versions `{current}` and `{tag}` from {url}"
            )));
        }
    }
    Ok(0)
}

/// `MAJOR.MINOR.PATCH` as numbers; a pre-release suffix sorts below its release.
fn parse(version: &str) -> Option<(u64, u64, u64, bool)> {
    let (core, pre) = match version.split_once('-') {
        Some((core, _)) => (core, true),
        None => (version, false),
    };
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch, !pre))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn versions_compare_numerically_with_prereleases_first() {
        assert!(parse("0.10.0") > parse("0.9.9"));
        assert!(parse("1.0.0") > parse("1.0.0-rc.1"));
        assert!(parse("1.2") == parse("1.2.0"));
        assert_eq!(parse("x.1"), None);
    }
}
