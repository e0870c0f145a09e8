//! Where zend's socket lives, decided the same way by both binaries.
//!
//! The rule must not depend on environment variables an MCP client may strip
//! (many pass only `HOME` and `PATH`), so `XDG_RUNTIME_DIR` is not consulted:
//!
//! 1. `ZEN_SOCKET`, when set, is the socket path itself.
//! 2. `ZEN_HOME`, when set, relocates everything: the socket is `$ZEN_HOME/run/zend.sock`.
//! 3. On Linux, `/run/user/<uid>/zen` when `/run/user/<uid>` exists and belongs to the user.
//! 4. Otherwise `/tmp/zen-<uid>`, a 0700 directory whose owner and mode are checked before use.
//!
//! The socket's directory is always private (0700, owned by the user): that is
//! what keeps other users off the daemon (the daemon checks peer credentials too).
//! Paths stay short because macOS limits a socket path to 104 bytes.

use std::io;
use std::path::{Path, PathBuf};

/// Relocates config, data, state and runtime directories at once (tests use it).
pub const HOME_ENV: &str = "ZEN_HOME";
/// Names the socket path directly, overriding every other rule.
pub const SOCKET_ENV: &str = "ZEN_SOCKET";
/// The socket's file name inside the runtime directory.
pub const SOCKET_NAME: &str = "zend.sock";
/// Beside the socket: present while a service manager (systemd, launchd) owns
/// zend, so the shim waits for that zend rather than starting its own.
pub const MANAGED_MARKER_NAME: &str = "zend.managed";
/// Longest socket path that works on every platform we support (macOS: 104 bytes with NUL).
pub const MAX_SOCKET_PATH: usize = 103;

/// The user id of this process.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The runtime directory (the socket's directory) when nothing overrides it.
pub fn default_runtime_dir() -> PathBuf {
    let uid = current_uid();
    if cfg!(target_os = "linux") {
        let user_run = PathBuf::from(format!("/run/user/{uid}"));
        if owned_by(&user_run, uid) {
            return user_run.join("zen");
        }
    }
    PathBuf::from(format!("/tmp/zen-{uid}"))
}

/// The runtime directory given the environment: `$ZEN_HOME/run` or the default.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os(HOME_ENV) {
        Some(home) if !home.is_empty() => PathBuf::from(home).join("run"),
        _ => default_runtime_dir(),
    }
}

/// The socket path given the environment (see the module docs for the rule).
pub fn socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => runtime_dir().join(SOCKET_NAME),
    }
}

/// The service marker that goes with `socket` (see [`MANAGED_MARKER_NAME`]).
pub fn managed_marker(socket: &Path) -> PathBuf {
    socket.with_file_name(MANAGED_MARKER_NAME)
}

fn owned_by(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// Creates `dir` (and parents) if missing, then checks that it is a directory
/// owned by this user and reachable by nobody else; a directory we own with a
/// looser mode is tightened to 0700. Anything else is refused with a reason.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory (a symlink or file is there); remove it or set {SOCKET_ENV}",
            dir.display()
        )));
    }
    if meta.uid() != current_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to you (uid {}); remove it or set {SOCKET_ENV}",
                dir.display(),
                meta.uid(),
                current_uid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_runtime_dir_is_short_and_per_user() {
        let dir = default_runtime_dir();
        let socket = dir.join(SOCKET_NAME);
        assert!(
            socket.as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            socket.display()
        );
        assert!(dir.to_string_lossy().contains(&current_uid().to_string()));
    }

    #[test]
    fn private_dir_is_created_0700_and_loose_modes_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("zen-proto-test-{}", std::process::id()));
        let dir = base.join("run");
        ensure_private_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&dir)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok();
        ensure_private_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&dir)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn a_file_in_place_of_the_dir_is_refused() {
        let base = std::env::temp_dir().join(format!("zen-proto-test-file-{}", std::process::id()));
        std::fs::write(&base, b"x").ok();
        let err = ensure_private_dir(&base)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_file(&base).ok();
    }
}
