//! `zend threads [--json] [filters]` and `zend threads show ID [--json]`:
//! find earlier conversations and read one, from the daemon's store (the CLI
//! never opens it). A terminal gets a table; a pipe gets the plain listing the
//! `threads` tool shows.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::connect::Target;
use super::{CliError, EXIT_OK, Style, query, truncate};
use crate::memory::{ThreadFilter, ThreadSummary};
use crate::time::{Clock, SystemClock};
use crate::util::human_duration;

/// `zend threads` filters, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Relative directories are taken from the current directory.
    pub cwd: Option<PathBuf>,
    pub tool: Option<String>,
    pub model: Option<String>,
    pub text: Option<String>,
    pub limit: Option<usize>,
}

pub async fn list(
    target: &Target,
    options: ListOptions,
    as_json: bool,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let cwd = match options.cwd {
        Some(dir) if dir.is_relative() => Some(std::env::current_dir()?.join(dir)),
        other => other,
    };
    let filter = ThreadFilter {
        cwd: cwd.map(|d| d.to_string_lossy().into_owned()),
        tool: options.tool,
        model: options.model,
        text: options.text,
        limit: options.limit.unwrap_or(ThreadFilter::DEFAULT_LIMIT),
    };
    let args = serde_json::to_value(&filter).map_err(std::io::Error::other)?;
    let mut client = target.connect_or_start().await?;
    let answer = query::request(&mut client, query::THREADS_LIST, args).await?;
    if as_json {
        writeln!(out, "{:#}", answer.json)?;
        return Ok(EXIT_OK);
    }
    match serde_json::from_value::<Vec<ThreadSummary>>(answer.json) {
        Ok(threads) if style.tty && !threads.is_empty() => {
            write!(out, "{}", table(&threads, style))?;
        }
        _ => write!(out, "{}", answer.text)?,
    }
    Ok(EXIT_OK)
}

pub async fn show(
    target: &Target,
    id: &str,
    as_json: bool,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let mut client = target.connect_or_start().await?;
    let answer = query::request(&mut client, query::THREADS_GET, json!({ "id": id })).await?;
    if as_json {
        writeln!(out, "{:#}", answer.json)?;
    } else {
        for line in answer.text.lines() {
            if line.starts_with("## ") || line.starts_with("Thread ") {
                writeln!(out, "{}", style.bold(line))?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// One row per thread: id, age, turns, tools, models, title.
fn table(threads: &[ThreadSummary], style: Style) -> String {
    use std::fmt::Write as _;
    let now = SystemClock.now();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}",
        style.bold(&format!(
            "{:<36}  {:>8}  {:>5}  {:<18}  {:<20}  TITLE",
            "ID", "AGE", "TURNS", "TOOLS", "MODELS"
        ))
    );
    for t in threads {
        let _ = writeln!(
            text,
            "{:<36}  {:>8}  {:>5}  {:<18}  {:<20}  {}",
            t.id.to_string(),
            human_duration(now.since(t.updated)),
            t.turn_count,
            truncate(&t.tools.join("→"), 18),
            truncate(&t.models.join(", "), 20),
            truncate(&t.title, 60),
        );
    }
    let _ = writeln!(
        text,
        "{}",
        style.dim("`zend threads show ID` reads one; `zend ask --continue ID` continues it.")
    );
    text
}
