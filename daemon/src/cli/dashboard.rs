//! `zend dashboard [--open]`: prints (and with `--open` opens) a one-time
//! login link to the dashboard zend serves on loopback (`crate::dashboard`).
//! The link comes from the running zend (started if need be) over the
//! owner-only socket; stdout gets the link alone, so scripts can take it.

use std::io::Write;

use serde_json::json;

use super::connect::Target;
use super::{CliError, EXIT_OK, query};

pub async fn run(
    target: &Target,
    open: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CliError> {
    let mut client = target.connect_or_start().await?;
    let answer = query::request(&mut client, query::DASHBOARD, json!({})).await?;
    let url = answer
        .json
        .get("url")
        .and_then(|u| u.as_str())
        .ok_or_else(|| CliError::Query("zend sent no dashboard link".to_owned()))?;
    writeln!(out, "{url}")?;
    writeln!(
        err,
        "This link works once, within 10 minutes; `zend dashboard` makes another. \
         Scripts can read the JSON API under /dashboard/api with `Authorization: Bearer $(zend http-token)`."
    )?;
    if open && let Err(e) = open_in_browser(url) {
        writeln!(
            err,
            "cannot open a browser ({e}); open the link above yourself"
        )?;
    }
    Ok(EXIT_OK)
}

/// Hands `url` to the desktop's opener, without waiting for the browser.
fn open_in_browser(url: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let status = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{opener} exited with {status}"
        )))
    }
}
