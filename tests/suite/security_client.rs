//! Clients trust nothing at the socket path (issue #32, item 1): zen-shim and
//! the `zend` commands check the socket's directory before connecting or
//! believing a `zend.managed` marker, and the server's uid once connected; a
//! directory the user named is never changed. And the shim's stdin buffer is
//! bounded (item 11).
//!
//! Another user is simulated by chowning to uid 65534, and a server of
//! another user by a listener that a forked child `listen`s on after
//! `setuid(65534)`. Both need root (CI runs as root); without it those parts
//! are skipped with a message.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{WAIT, ZenHome, shim_bin, zend_bin};

/// The uid that plays "another user".
const OTHER_UID: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `path` to [`OTHER_UID`]; false (and a message) when this process may not.
fn give_away(path: &Path) -> bool {
    if std::fs::symlink_metadata(path).unwrap().uid() == OTHER_UID {
        eprintln!("skipped: the tests run as uid {OTHER_UID}, the uid that plays another user");
        return false;
    }
    match std::os::unix::fs::lchown(path, Some(OTHER_UID), Some(OTHER_UID)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "skipped: cannot chown {} to uid {OTHER_UID} ({e}); run the tests as root to simulate another user",
                path.display()
            );
            false
        }
    }
}

/// A listener at `path`, to see whether a client connected (it never accepts).
fn decoy(path: &Path) -> UnixListener {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Panics if anyone connected to `listener`: a refused client sends nothing.
fn assert_untouched(listener: &UnixListener, who: &str) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(_) => panic!("{who} connected to a socket it should have refused"),
        Err(e) => panic!("{who}: accept failed: {e}"),
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A shim given `initialize` on stdin (a file: it may exit before reading
/// it), which must exit refused without writing a line; its stderr.
fn refused_shim(home: &ZenHome) -> String {
    let input = home.path().join("initialize.jsonl");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "zen-e2e", "version": "1.0"}}});
    std::fs::write(&input, format!("{initialize}\n")).unwrap();
    let mut child = home
        .command(&shim_bin())
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the shim neither refused nor went on");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "the shim went on: {output:?}");
    assert!(output.stdout.is_empty(), "the shim answered: {output:?}");
    stderr_of(&output)
}

/// Stops the zend of `home` through its socket (the harness finds zend by its
/// environment, which a non-dumpable zend hides from a user other than root).
fn stop(home: &ZenHome) {
    let stop = home.zend(&["stop"]);
    assert!(stop.status.success(), "{stop:?}");
}

/// `zend ARGS`, which must fail; its stderr.
fn refused_zend(home: &ZenHome, args: &[&str]) -> String {
    let output = home.zend(args);
    assert!(
        !output.status.success(),
        "zend {args:?} went on: {output:?}"
    );
    stderr_of(&output)
}

#[test]
fn a_runtime_dir_another_user_made_first_is_refused_before_a_byte_is_sent() {
    let home = ZenHome::new();
    let run = home.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let listener = decoy(&run.join("zend.sock"));
    set_mode(&run, 0o777);
    if !give_away(&run) {
        return;
    }
    let shown = run.display().to_string();
    for (who, stderr) in [
        ("zen-shim", refused_shim(&home)),
        ("zend status", refused_zend(&home, &["status"])),
        ("zend stop", refused_zend(&home, &["stop"])),
        ("zend models", refused_zend(&home, &["models"])),
    ] {
        assert!(
            stderr.contains(&shown) && stderr.contains(&format!("belongs to uid {OTHER_UID}")),
            "{who} does not say what is wrong: {stderr}"
        );
        assert!(
            stderr.contains("sudo rm -r") && stderr.contains("ZEN_SOCKET"),
            "{who} does not say what to do: {stderr}"
        );
        assert_untouched(&listener, who);
    }
    // Another user's directory is left as it was.
    assert_eq!(mode(&run), 0o777);
    assert_eq!(std::fs::metadata(&run).unwrap().uid(), OTHER_UID);
    assert!(home.zend_pids().is_empty(), "a zend was started");
}

#[test]
fn a_symlinked_runtime_dir_is_refused() {
    let home = ZenHome::new();
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    set_mode(&elsewhere, 0o700);
    let listener = decoy(&elsewhere.join("zend.sock"));
    let run = home.path().join("run");
    std::os::unix::fs::symlink(&elsewhere, &run).unwrap();
    for (who, stderr) in [
        ("zen-shim", refused_shim(&home)),
        ("zend status", refused_zend(&home, &["status"])),
    ] {
        assert!(
            stderr.contains(&format!("{} is a symlink", run.display())),
            "{who}: {stderr}"
        );
        assert!(stderr.contains("remove"), "{who}: {stderr}");
        assert_untouched(&listener, who);
    }
    assert!(std::fs::symlink_metadata(&run).unwrap().is_symlink());
    assert!(home.zend_pids().is_empty(), "a zend was started");
}

#[test]
fn zens_own_runtime_dir_is_tightened_and_zend_still_auto_starts() {
    let home = ZenHome::new();
    let run = home.path().join("run");
    std::fs::create_dir(&run).unwrap();
    set_mode(&run, 0o777);
    // `zend status` checks (and tightens) before it finds nothing running.
    let status = home.zend(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    assert_eq!(mode(&run), 0o700, "zend status left zen's directory open");
    set_mode(&run, 0o755);
    let mut client = home.session();
    assert_eq!(mode(&run), 0o700, "the shim left zen's directory open");
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    assert!(home.zend(&["status"]).status.success());
    assert!(client.close().success());
    stop(&home);
}

#[test]
fn a_missing_runtime_dir_is_created_private_and_zend_auto_starts() {
    let home = ZenHome::new();
    let run = home.path().join("run");
    assert!(!run.exists());
    let mut client = home.session();
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    assert_eq!(mode(&run), 0o700);
    assert_eq!(
        std::fs::metadata(&run).unwrap().uid(),
        std::fs::metadata(home.path()).unwrap().uid()
    );
    assert!(client.close().success());
    stop(&home);
}

#[test]
fn a_socket_dir_the_user_named_is_checked_never_changed() {
    let home = ZenHome::new();
    // Open to everyone's writes, not sticky: refused, and left as it is.
    let shared = home.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let listener = decoy(&shared.join("zen.sock"));
    let mut named = ZenHome::new();
    named.env.push((
        "ZEN_SOCKET".into(),
        shared.join("zen.sock").display().to_string(),
    ));
    for (who, stderr) in [
        ("zen-shim", refused_shim(&named)),
        ("zend status", refused_zend(&named, &["status"])),
    ] {
        assert!(
            stderr.contains("may be written by other users") && stderr.contains("ZEN_SOCKET"),
            "{who}: {stderr}"
        );
        assert_untouched(&listener, who);
    }
    assert_eq!(mode(&shared), 0o777, "a named directory was changed");
    drop(listener);
}

#[test]
fn zen_socket_in_home_leaves_home_as_it_was() {
    let mut home = ZenHome::new();
    set_mode(home.path(), 0o755);
    let socket = home.path().join("zen.sock");
    home.env
        .push(("ZEN_SOCKET".into(), socket.display().to_string()));
    let mut client = home.session();
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    assert!(home.zend(&["status"]).status.success());
    assert_eq!(mode(home.path()), 0o755, "the shim or zend changed $HOME");
    assert!(client.close().success());
    stop(&home);

    // A service's zend writes its marker beside the socket: in $HOME, unchanged.
    let mut serve = home.command(&zend_bin());
    serve.args(["serve", "--service"]);
    let mut service = crate::support::spawn_until_ready(serve, "zend serve --service", || {
        home.zend(&["status"]).status.success()
    });
    assert!(home.path().join("zend.managed").is_file());
    assert_eq!(
        mode(home.path()),
        0o755,
        "zend serve --service changed $HOME"
    );
    crate::support::stop_child_daemon(&home, &mut service);
}

#[test]
fn a_service_marker_of_another_user_is_refused_not_believed() {
    let home = ZenHome::new();
    let run = home.path().join("run");
    std::fs::create_dir(&run).unwrap();
    set_mode(&run, 0o700);
    let marker = run.join("zend.managed");
    std::fs::write(&marker, b"").unwrap();
    if !give_away(&marker) {
        return;
    }
    let stderr = refused_shim(&home);
    assert!(
        stderr.contains(&marker.display().to_string()) && stderr.contains("remove it"),
        "{stderr}"
    );
    assert!(home.zend_pids().is_empty(), "a zend was started");
}

/// A server of another user: refused once connected, before anything is sent.
#[cfg(target_os = "linux")]
#[test]
fn a_server_of_another_user_is_refused_once_connected() {
    let home = ZenHome::new();
    let run = home.path().join("run");
    std::fs::create_dir(&run).unwrap();
    set_mode(&run, 0o700);
    let socket = run.join("zend.sock");
    if std::fs::metadata(&run).unwrap().uid() == OTHER_UID {
        eprintln!("skipped: the tests run as uid {OTHER_UID}, the uid that plays another user");
        return;
    }
    for who in ["zen-shim", "zend status"] {
        let Some(server) = foreign::Listener::start(&socket, OTHER_UID) else {
            eprintln!("skipped: cannot run a listener as uid {OTHER_UID}; run the tests as root");
            return;
        };
        let stderr = match who {
            "zen-shim" => refused_shim(&home),
            _ => refused_zend(&home, &["status"]),
        };
        assert!(
            stderr.contains(&format!("runs as uid {OTHER_UID}"))
                && stderr.contains(&socket.display().to_string())
                && stderr.contains("ZEN_SOCKET"),
            "{who}: {stderr}"
        );
        assert_eq!(
            server.bytes_received(),
            Some(0),
            "{who} sent bytes to another user's server"
        );
        std::fs::remove_file(&socket).unwrap();
    }
    assert!(home.zend_pids().is_empty(), "a zend was started");
}

#[test]
fn a_line_over_the_limit_is_answered_by_the_shim_and_the_session_goes_on() {
    let home = ZenHome::new();
    let mut client = home.session();
    let id = client.next_request_id();
    // The id after the huge params, as the TypeScript SDK writes it.
    let padding = "x".repeat(20 << 20);
    let line = format!(
        r#"{{"method":"tools/call","params":{{"name":"version","arguments":{{"padding":"{padding}"}}}},"jsonrpc":"2.0","id":{id}}}"#
    );
    drop(padding);
    client.send_raw(line.as_bytes());
    client.send_raw(b"\n");
    let reply = client.response_to(id);
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("is {} bytes", line.len())) && message.contains("at most"),
        "{reply}"
    );
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    // The shim dropped it (zend never saw it), and held no copy of it.
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string(format!("/proc/{}/status", client.pid())).unwrap();
        let peak_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        assert!(
            peak_kib < 40 << 10,
            "the shim's peak memory was {peak_kib} KiB for a 20 MiB line"
        );
    }
    client.close_stdin();
    assert!(client.wait().success());
    assert!(
        client.stderr().contains("zen-shim: dropped a"),
        "{}",
        client.stderr()
    );
    stop(&home);
}

/// A listener whose process runs as another user (Linux: its peer credentials
/// are taken when `listen` is called, in a forked child after `setuid`).
#[cfg(target_os = "linux")]
mod foreign {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::sync::mpsc;

    use crate::support::WAIT;

    pub struct Listener {
        pid: libc::pid_t,
        report: mpsc::Receiver<Option<u64>>,
    }

    impl Listener {
        /// Binds `path` here, then forks a child that becomes `uid`, listens,
        /// accepts one connection and reports how many bytes came on it
        /// before the client closed it (or the first bytes, if it sent any).
        /// `None` when the child cannot become `uid` (not root).
        pub fn start(path: &Path, uid: u32) -> Option<Self> {
            use std::os::unix::ffi::OsStrExt;
            let (mut reader, writer) = std::io::pipe().unwrap();
            // SAFETY: plain libc calls on values owned here; sockaddr_un is
            // zeroed, then given its family and a path shorter than sun_path.
            let fd = unsafe {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
                let mut addr: libc::sockaddr_un = std::mem::zeroed();
                addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
                let bytes = path.as_os_str().as_bytes();
                assert!(bytes.len() < addr.sun_path.len());
                for (slot, byte) in addr.sun_path.iter_mut().zip(bytes) {
                    *slot = *byte as libc::c_char;
                }
                let bound = libc::bind(
                    fd,
                    std::ptr::addr_of!(addr).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                );
                assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
                fd
            };
            let out = writer.as_raw_fd();
            // SAFETY: the child calls only async-signal-safe functions (raw
            // syscalls, listen, accept, read, write, _exit) on memory it owns.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                // SAFETY: see above; this process ends in _exit.
                unsafe { serve(fd, out, uid) }
            }
            // SAFETY: the child has its own copy; this one is ours to close.
            unsafe { libc::close(fd) };
            drop(writer);
            let mut ready = [0u8; 1];
            if reader.read_exact(&mut ready).is_err() || ready[0] != b'R' {
                reap(pid);
                return None;
            }
            let (tx, report) = mpsc::channel();
            std::thread::spawn(move || {
                let mut count = [0u8; 8];
                let _ = tx.send(
                    reader
                        .read_exact(&mut count)
                        .ok()
                        .map(|()| u64::from_ne_bytes(count)),
                );
            });
            Some(Self { pid, report })
        }

        /// What the one client sent; `None` if none connected.
        pub fn bytes_received(&self) -> Option<u64> {
            self.report.recv_timeout(WAIT).ok().flatten()
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            reap(self.pid);
        }
    }

    fn reap(pid: libc::pid_t) {
        // SAFETY: `pid` is our child; killing and reaping it touches nothing else.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }

    /// The child: become `uid`, listen on `fd`, report on `out`, exit.
    unsafe fn serve(fd: libc::c_int, out: libc::c_int, uid: u32) -> ! {
        // SAFETY (all below): async-signal-safe calls on this process's own
        // descriptors and stack buffers.
        unsafe {
            let became = libc::syscall(libc::SYS_setresgid, uid, uid, uid) == 0
                && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
                && libc::listen(fd, 8) == 0;
            let status: u8 = if became { b'R' } else { b'E' };
            libc::write(out, std::ptr::addr_of!(status).cast(), 1);
            if !became {
                libc::_exit(1);
            }
            let conn = libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut());
            // One read: 0 once a refusing client closes; a client that sends
            // anything has failed the test, and the rest does not matter.
            let mut buffer = [0u8; 4096];
            let n = if conn >= 0 {
                libc::read(conn, buffer.as_mut_ptr().cast(), buffer.len())
            } else {
                -1
            };
            let bytes = (n.max(0) as u64).to_ne_bytes();
            libc::write(out, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0)
        }
    }
}
