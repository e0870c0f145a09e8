//! zend's logs: `tracing` to a daily-rotated file in the state directory
//! (`zend.YYYY-MM-DD.log`, a week kept), and to stderr when zend runs in the
//! foreground (not under a service manager, whose stderr file nobody rotates).
//! Level from `ZEN_LOG`, else `RUST_LOG`, else `info`. Nothing here ever sees a
//! secret: providers keep keys in a type that cannot be printed.
//!
//! Prompts stay out of the log at every level: no zend line carries a request
//! body, a prompt, a file's contents, an answer or an error text that may quote
//! them (those are logged as [`Sensitive`], shown only with `ZEN_LOG_BODIES=1`),
//! and rmcp, which logs whole messages at debug, is held at info unless that
//! switch is set. zend warns at start when it is.
//!
//! Each event is formatted and written to the file by the thread that logs it,
//! one `write(2)` of one line: nothing is queued, so nothing is lost when zend
//! dies, and no thread is woken. (tracing-appender's `non_blocking` writer wakes
//! its writer thread for every line, which then spins through `sched_yield`s
//! before parking again: a cross-thread wake in the path of each session's
//! `initialize` answer. zend logs a few lines per session at info, to a local
//! file, where a write is a copy into the page cache.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// zend's own events at info; rmcp's per-session chatter only when it matters.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// Targets that log whole messages below info: held at info unless bodies are on.
const BODY_TARGETS: &[&str] = &["rmcp"];
/// The switch that lets prompts, files and answers into the log.
pub const BODIES_ENV: &str = "ZEN_LOG_BODIES";

/// True when the user set `ZEN_LOG_BODIES=1` (read once).
pub fn bodies() -> bool {
    static BODIES: OnceLock<bool> = OnceLock::new();
    *BODIES.get_or_init(|| std::env::var(BODIES_ENV).is_ok_and(|v| v.trim() == "1"))
}

/// Text that may quote a prompt, a file or an answer (an error from upstream, a
/// bad argument): logged only with `ZEN_LOG_BODIES=1`.
pub struct Sensitive<'a, T: fmt::Display + ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for Sensitive<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if bodies() {
            self.0.fmt(f)
        } else {
            f.write_str("(hidden; ZEN_LOG_BODIES=1 logs it)")
        }
    }
}

pub fn filter() -> EnvFilter {
    let spec = std::env::var("ZEN_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    with_body_guard(
        EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info")),
        bodies(),
    )
}

/// Caps [`BODY_TARGETS`] at info, over whatever the spec said (a directive for
/// the same target added later replaces the earlier one).
fn with_body_guard(mut filter: EnvFilter, bodies: bool) -> EnvFilter {
    if bodies {
        return filter;
    }
    for target in BODY_TARGETS {
        let spec = if DEFAULT_FILTER.contains(&format!("{target}=warn")) {
            format!("{target}=warn")
        } else {
            format!("{target}=info")
        };
        if let Ok(directive) = spec.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Logs to the state directory, and to stderr too when `to_stderr`.
pub fn init(state_dir: &Path, to_stderr: bool) -> std::io::Result<()> {
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("zend")
        .filename_suffix("log")
        .max_log_files(7)
        .build(state_dir)
        .map_err(std::io::Error::other)?;
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(appender)
        .with_ansi(false);
    let stderr_layer =
        to_stderr.then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    // A second init (tests running zend in-process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    if bodies() {
        tracing::warn!(
            "{BODIES_ENV}=1: prompts, file contents and answers may be written to this log; unset it once done"
        );
    }
    Ok(())
}

/// Today's log file (UTC date, as the rotation names it).
pub fn current_log_file(state_dir: &Path) -> PathBuf {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    let (y, m, d) = crate::time::civil_from_days(days);
    state_dir.join(format!("zend.{y:04}-{m:02}-{d:02}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_targets_stay_at_info_or_below_whatever_the_spec() {
        use tracing::level_filters::LevelFilter;
        for spec in ["trace", "rmcp=trace", "debug,rmcp=debug"] {
            let guarded = with_body_guard(EnvFilter::new(spec), false).to_string();
            assert!(guarded.contains("rmcp=warn"), "{spec}: {guarded}");
            assert!(
                !guarded.contains("rmcp=trace") && !guarded.contains("rmcp=debug"),
                "{guarded}"
            );
        }
        let open = with_body_guard(EnvFilter::new("rmcp=trace"), true);
        assert_eq!(open.max_level_hint(), Some(LevelFilter::TRACE));
    }
}
