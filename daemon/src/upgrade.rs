//! Replacing an auto-started zend when a newer zen-shim connects.
//!
//! After an upgrade the shims an MCP client launches are new while the daemon
//! they find is old. An auto-started zend that sees a session from a strictly
//! newer shim *retires*: it keeps serving everyone, and as soon as no session
//! from an older shim is left (at once if there is none) it shuts down with the
//! "restart" end marker. The newer shims, which know how, reconnect and start
//! the zend installed beside them (see the shim's `replay`); older shims are
//! never cut. A zend started by hand or by a service manager never retires: the
//! skew is only reported (`zend status`).
//!
//! Never in a loop: a zend retires at most once, never for an older or equal
//! shim, and the version it retired for is written to `zend.upgrade` in the
//! runtime directory; a zend (say, the same old binary started again) does not
//! retire a second time for that version.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::daemon::Daemon;

/// The record of the last shim version a zend retired for.
pub const RECORD_FILE: &str = "zend.upgrade";

/// One daemon's retirement state.
#[derive(Debug, Default)]
pub struct Upgrade {
    retiring: AtomicBool,
    restarting: AtomicBool,
}

impl Upgrade {
    /// True once zend is shutting down to be replaced (sessions end with "restart").
    pub fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::SeqCst)
    }

    /// Called for each new session: starts retiring when this session's shim
    /// is newer than zend and the rules above allow it.
    pub fn consider(self: &Arc<Self>, daemon: &Arc<Daemon>, shim_version: &str) {
        if !newer(shim_version, zen_proto::VERSION) {
            return;
        }
        if !daemon.auto_started {
            tracing::warn!(
                shim_version,
                daemon_version = zen_proto::VERSION,
                "a newer zen-shim connected; restart zend's service to upgrade it"
            );
            return;
        }
        if self.retiring.swap(true, Ordering::SeqCst) {
            return;
        }
        let record = daemon.locations.runtime_dir.join(RECORD_FILE);
        if !claim(&record, shim_version) {
            tracing::warn!(
                shim_version,
                daemon_version = zen_proto::VERSION,
                "a newer zen-shim connected, but a restart for it already happened once; \
                 the zend beside that shim is not newer: reinstall both binaries together"
            );
            return;
        }
        tracing::info!(
            shim_version,
            daemon_version = zen_proto::VERSION,
            "a newer zen-shim connected: zend will restart once no older session is left"
        );
        tokio::spawn(retire(
            Arc::clone(self),
            Arc::clone(daemon),
            shim_version.to_owned(),
        ));
    }
}

/// Waits until no session of a shim older than `target` is left, then shuts down.
async fn retire(upgrade: Arc<Upgrade>, daemon: Arc<Daemon>, target: String) {
    let mut count = daemon.sessions.watch_count();
    loop {
        let older = daemon
            .sessions
            .snapshot()
            .iter()
            .filter(|s| !newer(&s.meta.shim_version, &target) && s.meta.shim_version != target)
            .count();
        if older == 0 {
            tracing::info!(target_version = %target, "restarting for a newer zen-shim");
            upgrade.restarting.store(true, Ordering::SeqCst);
            daemon.shutdown.cancel();
            return;
        }
        tokio::select! {
            changed = count.changed() => if changed.is_err() { return },
            () = daemon.shutdown.cancelled() => return,
        }
    }
}

/// Records `version` as retired for; false if it already was.
fn claim(record: &Path, version: &str) -> bool {
    if std::fs::read_to_string(record).is_ok_and(|text| text.trim() == version) {
        return false;
    }
    if let Err(e) = std::fs::write(record, format!("{version}\n")) {
        // Without the record a loop is possible; without the restart the skew stays.
        tracing::warn!(error = %e, record = %PathBuf::from(record).display(), "cannot record the upgrade; not restarting");
        return false;
    }
    true
}

/// `a` is a strictly newer `MAJOR.MINOR.PATCH` than `b` (pre-release and build
/// suffixes ignored); false when either does not parse.
pub fn newer(a: &str, b: &str) -> bool {
    match (triple(a), triple(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

fn triple(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let triple = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(triple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strictly_newer_parseable_versions_count() {
        assert!(newer("0.2.0", "0.1.9"));
        assert!(newer("1.0.0", "0.99.99"));
        assert!(newer("0.1.10", "0.1.9"));
        assert!(!newer("0.1.0", "0.1.0"));
        assert!(!newer("0.1.0-rc.1", "0.1.0"));
        assert!(!newer("0.0.9", "0.1.0"));
        assert!(!newer("", "0.1.0"));
        assert!(!newer("banana", "0.1.0"));
        assert!(!newer("1.2", "0.1.0"));
        assert!(!newer("1.2.3.4", "0.1.0"));
    }

    #[test]
    fn a_version_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join(RECORD_FILE);
        assert!(claim(&record, "9.0.0"));
        assert!(!claim(&record, "9.0.0"));
        assert!(claim(&record, "9.1.0"));
        assert!(!claim(&dir.path().join("missing/dir/file"), "9.2.0"));
    }
}
