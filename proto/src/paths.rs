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
//! named (`ZEN_SOCKET`'s, `--runtime-dir`) is checked, never changed. Clients
//! make the check before every connection attempt and before believing a
//! `zend.managed` marker (see `client`).
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

/// Where zend's socket is and who chose its directory: all a client needs to
/// reach zend safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub path: PathBuf,
    /// Who chose [`Socket::dir`]: zen's own is kept private, the user's only checked.
    pub chosen: Chosen,
}

impl Socket {
    /// The socket given the environment, as zen-shim finds it ([`socket_path`]).
    pub fn from_env() -> Self {
        Self {
            path: socket_path(),
            chosen: socket_dir_chosen(),
        }
    }

    /// The directory the socket lives in.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// [`prepare_dir`] for the socket's directory: before zend binds there, and
    /// before a client connects or believes a marker found there.
    pub fn prepare_dir(&self) -> io::Result<()> {
        prepare_dir(self.dir(), self.chosen)
    }

    /// The service marker beside the socket (see [`MANAGED_MARKER_NAME`]).
    pub fn managed_marker(&self) -> PathBuf {
        managed_marker(&self.path)
    }
}

fn owned_by(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// What to do instead of using a directory another user could have prepared.
fn elsewhere() -> String {
    format!(
        "or set {SOCKET_ENV} (for zen-shim and zend alike) to a socket path in a directory of yours, \
         such as ~/.zen/zend.sock"
    )
}

/// Makes sure the socket may live in `dir`, before zend binds there or a
/// client connects (or believes a `zend.managed` marker found there).
///
/// Missing, it is created 0700 (it is then zen's). A directory of zen's
/// choosing that is this user's has its group and other bits removed; then
/// [`check_dir`] decides. A directory the user named is never changed.
pub fn prepare_dir(dir: &Path, chosen: Chosen) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // Someone was quicker (another client, or another user): check it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
        Ok(meta) => {
            if chosen == Chosen::ByZen
                && meta.is_dir()
                && meta.uid() == current_uid()
                && meta.mode() & 0o077 != 0
            {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
    }
    check_dir(dir, chosen)
}

/// Whether the socket may live in `dir`, changing nothing (`zend doctor` asks
/// this; [`prepare_dir`] creates and tightens first).
///
/// A directory of zen's choosing must be a directory (not a symlink) owned by
/// this user, with no group or other bits. One the user named (through their
/// own symlinks, if they like) must be a directory owned by this user or root
/// that no one else may write to, unless it is sticky as `/tmp` is. The error
/// says what is wrong and what to remove or set.
pub fn check_dir(dir: &Path, chosen: Chosen) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let uid = current_uid();
    let shown = dir.display();
    let meta = match chosen {
        Chosen::ByZen => std::fs::symlink_metadata(dir)?,
        Chosen::ByUser => std::fs::metadata(dir)?,
    };
    if meta.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{shown} is a symlink (made by uid {}), not a directory: zen keeps its socket only in a \
                 directory of yours that nobody else can enter; remove {shown} (zen creates it again, 0700), {}",
                meta.uid(),
                elsewhere()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(io::Error::other(match chosen {
            Chosen::ByZen => format!("{shown} is not a directory; remove it, {}", elsewhere()),
            Chosen::ByUser => format!(
                "{shown} is not a directory; point {SOCKET_ENV} (or --runtime-dir) elsewhere"
            ),
        }));
    }
    match chosen {
        Chosen::ByZen if meta.uid() != uid => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{shown} belongs to uid {}, not to you (uid {uid}): another user may be posing as zend there; \
                 have it removed (`sudo rm -r {shown}`), {}",
                meta.uid(),
                elsewhere()
            ),
        )),
        Chosen::ByZen if meta.mode() & 0o077 != 0 => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{shown} is open to other users (mode {:o}), who could put their own socket there; \
                 run `chmod 700 {shown}` or remove it, {}",
                meta.mode() & 0o7777,
                elsewhere()
            ),
        )),
        Chosen::ByZen => Ok(()),
        Chosen::ByUser if meta.uid() != uid && meta.uid() != 0 => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{shown} belongs to uid {}, not to you (uid {uid}) or root; point {SOCKET_ENV} \
                 (or --runtime-dir) at a directory of yours",
                meta.uid()
            ),
        )),
        Chosen::ByUser if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 => {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{shown} may be written by other users (mode {:o}), who could put their own socket there; \
                     run `chmod go-w {shown}` or point {SOCKET_ENV} (or --runtime-dir) elsewhere",
                    meta.mode() & 0o7777
                ),
            ))
        }
        Chosen::ByUser => Ok(()),
    }
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
        // macOS's per-user temporary directory does not name the uid.
        if cfg!(not(target_os = "macos")) {
            assert!(dir.to_string_lossy().contains(&current_uid().to_string()));
        }
    }

    #[test]
    fn private_dir_is_created_0700_and_loose_modes_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("zen-proto-test-{}", std::process::id()));
        let dir = base.join("run");
        prepare_dir(&dir, Chosen::ByZen).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&dir)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok();
        prepare_dir(&dir, Chosen::ByZen).unwrap_or_else(|e| panic!("{e}"));
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
        let err = prepare_dir(&base, Chosen::ByZen)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_file(&base).ok();
    }

    #[test]
    fn a_symlink_is_refused_as_zens_dir_and_followed_as_the_users() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("zen-proto-link-{}", std::process::id()));
        let target = base.join("target");
        std::fs::create_dir_all(&target).ok();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).ok();
        let link = base.join("run");
        std::os::unix::fs::symlink(&target, &link).ok();
        let err = prepare_dir(&link, Chosen::ByZen)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("is a symlink") && err.contains(SOCKET_ENV),
            "{err}"
        );
        assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_symlink()));
        prepare_dir(&link, Chosen::ByUser).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn a_socket_path_without_a_directory_lives_in_the_current_one() {
        let socket = Socket {
            path: PathBuf::from("zend.sock"),
            chosen: Chosen::ByUser,
        };
        assert_eq!(socket.dir(), Path::new("."));
        let socket = Socket {
            path: PathBuf::from("/tmp/x/zend.sock"),
            chosen: Chosen::ByZen,
        };
        assert_eq!(socket.dir(), Path::new("/tmp/x"));
        assert_eq!(
            socket.managed_marker(),
            PathBuf::from("/tmp/x/zend.managed")
        );
    }
}
