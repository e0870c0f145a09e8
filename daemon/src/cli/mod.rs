//! The `zend` command line for people and scripts: `status`, `stop`, `reload`,
//! `models`, `threads`, `ask`, `consensus`, `dashboard` and `doctor`. Every command talks to the one
//! daemon over the same socket the shims use; the CLI never opens the store or
//! calls a model itself (zend holds the store and the keys). The one exception
//! is `doctor` with no daemon running, which checks the configuration and keys
//! in-process and says that nothing runs.
//!
//! Output: tables and colour when stdout is a terminal (and `NO_COLOR` is
//! unset), plain text when piped, JSON with `--json` on every read command.
//! Commands that need a daemon start one as zen-shim does ([`connect`]),
//! unless `ZEN_NO_AUTOSTART=1`.
//!
//! Exit codes scripts can rely on:
//! - 0 ([`EXIT_OK`]): success;
//! - 1 ([`EXIT_ERROR`]): an error (zend answered with one, an I/O failure,
//!   `doctor` found a problem);
//! - 2 ([`EXIT_USAGE`]): bad usage (clap's own code for bad arguments, too);
//! - 3 ([`EXIT_NOT_RUNNING`]): no zend answers and none may be started
//!   (`status`, or `ZEN_NO_AUTOSTART=1`);
//! - 4 ([`EXIT_TOOL_ERROR`]): the tool answered with an error (`ask`,
//!   `consensus`: the result had `isError`);
//! - 130 ([`ask::EXIT_INTERRUPTED`]): Ctrl-C cancelled a running `ask`/`consensus`.

pub mod ask;
pub mod connect;
pub mod dashboard;
pub mod doctor;
pub mod keys;
pub mod models;
pub mod query;
pub mod reload;
mod status;
pub mod threads;
pub mod version;

use std::io::{IsTerminal, Write};

pub use status::{status, status_json, status_text, stop};

use crate::client::ClientError;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// Exit code when no daemon answers (and none may be started).
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_TOOL_ERROR: u8 = 4;

/// Why a CLI command failed; [`CliError::exit_code`] maps it to the codes above.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Nothing answers and starting zend is not allowed or did not work.
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    Usage(String),
    /// zend answered a query with an error.
    #[error("{0}")]
    Query(String),
    /// The MCP exchange of `ask`/`consensus` failed (not the tool: the protocol).
    #[error("the MCP session with zend failed: {0}")]
    Session(String),
    #[error(transparent)]
    Location(#[from] crate::locations::LocationError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(ClientError::NotRunning(_)) | Self::NotRunning(_) => EXIT_NOT_RUNNING,
            Self::Usage(_) => EXIT_USAGE,
            _ => EXIT_ERROR,
        }
    }
}

/// Turns a command's outcome into its exit code, printing the error (with its
/// causes) on `err`. A closed stdout (`zend threads | head`) is not an error.
pub fn finish(outcome: Result<u8, CliError>, err: &mut dyn Write) -> u8 {
    match outcome {
        Ok(code) => code,
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            let _ = writeln!(err, "zend: {text}");
            e.exit_code()
        }
    }
}

/// How to decorate text: ANSI colour and tables on a terminal, nothing when piped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    /// A terminal is reading: tables rather than the plain renderings.
    pub tty: bool,
}

impl Style {
    /// For stdout: a terminal gets tables, and colour unless `NO_COLOR` is set.
    pub fn for_stdout() -> Self {
        let tty = std::io::stdout().is_terminal();
        Self {
            tty,
            color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// For stderr (progress, footers, tool errors), by the same rules.
    pub fn for_stderr() -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            tty,
            color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// No decoration (tests, pipes).
    pub fn plain() -> Self {
        Self::default()
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Whether a process with this pid exists (signal 0 delivers nothing, it only checks).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists; pid > 0 names one
    // process, never a group.
    pid > 0 && unsafe { libc::kill(pid, 0) == 0 }
}
