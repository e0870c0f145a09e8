//! Socket activation: take the listening socket a service manager handed us.
//!
//! systemd's protocol (`sd_listen_fds(3)`): the manager binds the socket itself,
//! starts zend with it as file descriptor 3, and sets `LISTEN_FDS=1` and
//! `LISTEN_PID=<zend's pid>`. The pid check matters: the variables are inherited
//! by any child, and only the process they were set for may take the fd.
//!
//! A socket we were handed is the manager's: zend never binds over it and never
//! removes it on exit (see `server::serve`), so the next connection wakes a new
//! zend. The variables are left in the environment (removing them is unsound in
//! a multi-threaded process); zend starts no children that could misread them,
//! and the pid check would stop them if it did.

use std::os::fd::{FromRawFd, RawFd};

/// The first passed file descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;
pub const LISTEN_FDS_ENV: &str = "LISTEN_FDS";
pub const LISTEN_PID_ENV: &str = "LISTEN_PID";

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "{LISTEN_FDS_ENV}={0} but zend serves exactly one socket; set ListenStream once in zend.socket"
    )]
    FdCount(String),
    #[error(
        "the socket passed as fd 3 is not a listening Unix stream socket ({0}); check zend.socket"
    )]
    NotAListener(String),
}

/// The listening socket passed by the service manager, if any was passed to us.
pub fn listener_from_env() -> Result<Option<std::os::unix::net::UnixListener>, ActivationError> {
    let pid = std::env::var(LISTEN_PID_ENV).ok();
    let fds = std::env::var(LISTEN_FDS_ENV).ok();
    take(pid.as_deref(), fds.as_deref(), std::process::id())
}

fn take(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    my_pid: u32,
) -> Result<Option<std::os::unix::net::UnixListener>, ActivationError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(my_pid) {
        return Ok(None);
    }
    match fds.trim().parse::<u32>() {
        Ok(0) => return Ok(None),
        Ok(1) => {}
        _ => return Err(ActivationError::FdCount(fds.to_owned())),
    }
    check_listening_unix_socket(LISTEN_FDS_START)?;
    // SAFETY: the manager passed fd 3 to this very process (LISTEN_PID matched)
    // and we checked it is a listening Unix stream socket; nothing else in zend
    // uses fd 3, and this function takes it once (serve runs once per process).
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(LISTEN_FDS_START) };
    set_cloexec(LISTEN_FDS_START);
    Ok(Some(listener))
}

fn check_listening_unix_socket(fd: RawFd) -> Result<(), ActivationError> {
    let int_opt = |level, name| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len point to valid memory of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&raw mut value).cast::<libc::c_void>(),
                &raw mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(ActivationError::NotAListener(
                std::io::Error::last_os_error().to_string(),
            ))
        }
    };
    let sock_type = int_opt(libc::SOL_SOCKET, libc::SO_TYPE)?;
    if sock_type != libc::SOCK_STREAM {
        return Err(ActivationError::NotAListener("not a stream socket".into()));
    }
    #[cfg(target_os = "linux")]
    {
        if int_opt(libc::SOL_SOCKET, libc::SO_DOMAIN)? != libc::AF_UNIX {
            return Err(ActivationError::NotAListener("not a Unix socket".into()));
        }
        if int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
            return Err(ActivationError::NotAListener("not listening".into()));
        }
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an fd we own, with valid commands and flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_for_another_process_or_absent_are_ignored() {
        assert!(take(None, None, 42).unwrap().is_none());
        assert!(take(Some("41"), Some("1"), 42).unwrap().is_none());
        assert!(take(Some("42"), Some("0"), 42).unwrap().is_none());
    }

    #[test]
    fn more_than_one_fd_is_refused() {
        let err = take(Some("42"), Some("2"), 42).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }
}
