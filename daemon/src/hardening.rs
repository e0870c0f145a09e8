//! What `zend serve` does to its own process so that what it holds stays the
//! user's: files private whatever the umask, no core dumps, no working
//! directory pinned. The socket's own checks live in `zen_proto::paths` and
//! `ipc::accept`; this module is the rest, done once at start.
//!
//! Files: zend runs with umask 077, so everything it creates (the store, its
//! log, the logs tracing rotates in at midnight, the HTTP token, the lock) is
//! 0600 and every directory 0700, however it was started. Programs zend runs
//! for tools (git, clink's CLIs) get the user's umask back ([`user_umask`]):
//! files they write in a repository must not change mode because zend ran
//! them. What an older zend (or a loose umask) left behind is tightened at
//! start ([`tighten`]).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::locations::Locations;

/// The umask zend was started with; children get it back.
static USER_UMASK: AtomicU32 = AtomicU32::new(0o022);

/// Sets the umask to 077, remembering the one zend was started with.
pub fn private_umask() {
    // SAFETY: umask has no preconditions and cannot fail.
    let previous = unsafe { libc::umask(0o077) };
    // mode_t is u32 on Linux and u16 on macOS.
    #[allow(clippy::useless_conversion)]
    USER_UMASK.store(u32::from(previous), Ordering::Relaxed);
}

/// The umask zend was started with (before [`private_umask`]).
pub fn user_umask_value() -> u32 {
    USER_UMASK.load(Ordering::Relaxed)
}

/// Makes `command`'s process start with the user's umask rather than zend's 077.
pub fn user_umask(command: &mut tokio::process::Command) {
    let mask = user_umask_value() as libc::mode_t;
    // SAFETY: the closure runs between fork and exec and calls only umask,
    // which is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
}

/// No core dumps: a core of zend would hold every provider key of the user.
/// On Linux the process is also made non-dumpable, which keeps other
/// processes (even the user's, short of root) from attaching to it or reading
/// its memory through /proc.
pub fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass; a failure leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot turn core dumps off");
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument and has no other effect.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "cannot make zend non-dumpable");
        }
    }
}

/// Leaves the directory zend was started in, so a long-lived zend never keeps
/// a mount busy or a deleted directory alive. Every path zend uses is absolute
/// by then (`Locations::resolve`).
pub fn leave_working_dir() {
    if let Err(e) = std::env::set_current_dir("/") {
        tracing::warn!(error = %e, "cannot change to /");
    }
}

/// Tightens what zend keeps to 0600 (files) and 0700 (directories): the data
/// and state directories with everything in them, and the config directory's
/// `secrets` (`.env`, `http-token`). A directory the user named by a flag or a
/// variable of its own is left as it is; only what is in it is tightened.
pub fn tighten(locations: &Locations, secrets: &[&str]) {
    for (dir, named) in [
        (&locations.data_dir, locations.named.data),
        (&locations.state_dir, locations.named.state),
    ] {
        tighten_tree(dir, !named, 0);
    }
    if !locations.named.config {
        tighten_one(&locations.config_dir, 0o700);
    }
    for secret in secrets {
        tighten_one(&locations.config_dir.join(secret), 0o600);
    }
}

/// How deep [`tighten`] walks: the store keeps its log one level down.
const MAX_DEPTH: usize = 3;

fn tighten_tree(dir: &Path, tighten_dir: bool, depth: usize) {
    if tighten_dir {
        tighten_one(dir, 0o700);
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            tighten_tree(&entry.path(), true, depth + 1);
        } else if kind.is_file() {
            tighten_one(&entry.path(), 0o600);
        }
    }
}

/// Removes the group and other bits of `path` (never a symlink's target),
/// keeping the owner's; `most` is what is kept at most (0600 or 0700).
fn tighten_one(path: &Path, most: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    let wanted = mode & most;
    if wanted != mode {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make this private (chmod go-rwx it)");
        } else {
            tracing::info!(path = %path.display(), from = format!("{mode:o}"), to = format!("{wanted:o}"), "made private");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn loose_files_and_dirs_are_tightened_but_not_named_dirs() {
        let home = tempfile::tempdir().unwrap();
        let locations = Locations::resolve(&crate::locations::Overrides {
            home: Some(home.path().to_path_buf()),
            state_dir: Some(home.path().join("mine")),
            ..Default::default()
        })
        .unwrap();
        for dir in [
            &locations.data_dir,
            &locations.state_dir,
            &locations.config_dir,
        ] {
            std::fs::create_dir_all(dir.join("wal")).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let files = [
            locations.data_dir.join("store.redb"),
            locations.data_dir.join("wal/0"),
            locations.state_dir.join("zend.log"),
            locations.config_dir.join(".env"),
        ];
        for file in &files {
            std::fs::write(file, "x").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let yaml = locations.config_dir.join("models.yaml");
        std::fs::write(&yaml, "x").unwrap();
        std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o644)).unwrap();

        tighten(&locations, &[".env"]);
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&locations.data_dir), 0o700);
        assert_eq!(mode(&locations.data_dir.join("wal")), 0o700);
        assert_eq!(mode(&locations.config_dir), 0o700);
        assert_eq!(
            mode(&locations.state_dir),
            0o755,
            "a named directory keeps its mode"
        );
        assert_eq!(mode(&yaml), 0o644, "the user's own config files are theirs");
    }
}
