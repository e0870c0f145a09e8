//! Where zend's socket lives, decided the same way by both binaries.
//!
//! The rule must not depend on environment variables an MCP client may strip
//! (many pass only `HOME` and `PATH`), so `XDG_RUNTIME_DIR` is not consulted:
//!
//! 1. `ZEN_SOCKET`, when set, is the socket path itself.
//! 2. `ZEN_HOME`, when set, relocates everything: the socket is `$ZEN_HOME/run/zend.sock`.
//! 3. On Linux, `/run/user/<uid>/zen` when `/run/user/<uid>` exists and belongs to the user;
//!    on macOS, `zen` in the per-user temporary directory (`confstr(_CS_DARWIN_USER_TEMP_DIR)`,
//!    which needs no environment variable).
//! 4. Otherwise `/tmp/zen-<uid>`.
//!
//! Both ends check the socket's directory before using it ([`prepare_dir`]), and
//! each checks the other's uid once connected: another user who creates
//! `/tmp/zen-<uid>` first, or binds a socket there, is refused, never talked to.
//! A directory of zen's own choosing is created 0700 and kept so; one the user
//! named (`ZEN_SOCKET`'s, `--runtime-dir`) is checked, never changed.
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
    #[cfg(target_os = "macos")]
    if let Some(temp) = darwin_user_temp_dir() {
        return temp.join("zen");
    }
    PathBuf::from(format!("/tmp/zen-{uid}"))
}

/// macOS's per-user temporary directory (`/var/folders/.../T/`), private to the user.
#[cfg(target_os = "macos")]
fn darwin_user_temp_dir() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buffer = vec![0u8; 1024];
    // SAFETY: confstr writes at most `buffer.len()` bytes, the NUL included, and
    // returns the length it needed (0 on error).
    let needed = unsafe {
        libc::confstr(
            libc::_CS_DARWIN_USER_TEMP_DIR,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    if needed == 0 || needed > buffer.len() {
        return None;
    }
    buffer.truncate(needed - 1);
    let dir = PathBuf::from(std::ffi::OsString::from_vec(buffer));
    owned_by(&dir, current_uid()).then_some(dir)
}

/// Who chose a directory, which decides what zen may do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// zen's own default (or `$ZEN_HOME/run`): created 0700, tightened back to 0700.
    ByZen,
    /// Named by the user (`ZEN_SOCKET`, `--runtime-dir`): checked, never changed.
    ByUser,
}

/// Who chose the directory of [`socket_path`]'s socket.
pub fn socket_dir_chosen() -> Chosen {
    match std::env::var_os(SOCKET_ENV) {
        Some(path) if !path.is_empty() => Chosen::ByUser,
        _ => Chosen::ByZen,
    }
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

/// Makes sure the socket may live in `dir`, before zend binds there or a
/// client connects (or believes a `zend.managed` marker found there).
///
/// Missing, it is created 0700 (it is then zen's). A directory of zen's
/// choosing must be a directory (not a symlink) owned by this user; group or
/// other bits on it are removed. One the user named must be a directory owned
/// by this user or root that no one else may write to (unless sticky, as
/// `/tmp`); it is never changed. Anything else is refused, saying what to
/// remove or set.
pub fn prepare_dir(dir: &Path, chosen: Chosen) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if chosen == Chosen::ByZen {
        return ensure_private_dir(dir);
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ensure_private_dir(dir),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // The user may name a path through a symlink of theirs: follow it here.
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory; point {SOCKET_ENV} (or --runtime-dir) elsewhere",
            dir.display()
        )));
    }
    let uid = current_uid();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to you (uid {uid}) or root; point {SOCKET_ENV} (or --runtime-dir) at a directory of yours",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} may be written by other users (mode {:o}), who could put their own socket there; \
                 run `chmod go-w {}` or point {SOCKET_ENV} (or --runtime-dir) elsewhere",
                dir.display(),
                meta.mode() & 0o7777,
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Creates `dir` (and parents) if missing, then checks that it is a directory
/// owned by this user and reachable by nobody else; a directory we own with a
/// looser mode is tightened to 0700. Anything else is refused with a reason.
/// For directories of zen's choosing only ([`prepare_dir`]).
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
                "{} belongs to uid {}, not to you (uid {}): someone else may be posing as zend; \
                 remove it (as root) or set {SOCKET_ENV} to a socket in a directory of yours",
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
    fn a_directory_the_user_named_is_checked_never_changed() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("zen-proto-named-{}", std::process::id()));
        std::fs::create_dir_all(&base).ok();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).ok();
        prepare_dir(&base, Chosen::ByUser).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&base), 0o755, "a named directory keeps its mode");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).ok();
        let err = prepare_dir(&base, Chosen::ByUser)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("written by other users"), "{err}");
        assert_eq!(mode(&base), 0o777, "refused, not changed");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).ok();
        prepare_dir(&base, Chosen::ByUser).unwrap_or_else(|e| panic!("sticky: {e}"));
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
