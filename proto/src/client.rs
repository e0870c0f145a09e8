//! Reaching zend as a client: connect to its socket, or start it and wait until it
//! answers; then a gRPC client over that one connection. zen-shim and the `zend`
//! CLI both come through here.
//!
//! Nothing at the socket path is trusted: before every attempt the socket's
//! directory is checked (and created 0700 when missing, see
//! [`crate::paths::prepare_dir`]), a `zend.managed` marker counts only when it
//! is the user's, and the server must run as this user ([`crate::peer`]).
//!
//! Follows sccache's `connect_or_start_server`: try the socket; when a service
//! manager owns zend (`zend.managed` beside the socket) only wait for it; when
//! auto-start is forbidden give up; else start `zend serve --auto-started`
//! detached (its own session, stdio on /dev/null, so the MCP client never waits on
//! an inherited pipe) and retry with backoff. Many clients may race here; zend's
//! lock file keeps it to one daemon, and every client ends up on the same socket.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tonic::codegen::http;

use crate::paths::Socket;
use crate::v1::zend_client::ZendClient;

/// Set to `1` to never start zend (a service manager owns it).
pub const NO_AUTOSTART_ENV: &str = "ZEN_NO_AUTOSTART";
/// How long to wait for a service-managed daemon to answer.
const MANAGED_WAIT: Duration = Duration::from_secs(3);
/// How long to wait for a freshly started daemon to answer.
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait when reconnecting: a daemon on its way out may first let
/// its running calls finish (its shutdown deadline, 10 s by default).
pub const RECONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// A socket whose backlog stays full belongs to a daemon on its way out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Least time between two starts of zend by this client (see [`connect_or_start`]).
const RESPAWN_INTERVAL: Duration = Duration::from_millis(250);
/// While zend starts the socket is tried this often: a failed connect costs
/// microseconds, and the wait between zend's `bind` and the next attempt is
/// start-up time the user waits.
const FAST_POLL: Duration = Duration::from_millis(1);
/// How long to poll at [`FAST_POLL`] before backing off.
const FAST_POLL_FOR: Duration = Duration::from_millis(100);
/// The longest wait between two attempts once backing off.
const SLOW_POLL_MAX: Duration = Duration::from_millis(50);

/// Whether this process may start zend (`ZEN_NO_AUTOSTART` is not `1`).
pub fn autostart_allowed() -> bool {
    !std::env::var(NO_AUTOSTART_ENV).is_ok_and(|v| v == "1")
}

/// The wait before the next attempt to reach a starting zend, `elapsed` after
/// the first, when the last wait was `previous`: every [`FAST_POLL`] for
/// [`FAST_POLL_FOR`], then doubling up to [`SLOW_POLL_MAX`].
pub fn poll_delay(elapsed: Duration, previous: Duration) -> Duration {
    if elapsed < FAST_POLL_FOR {
        FAST_POLL
    } else {
        (previous * 2).clamp(FAST_POLL, SLOW_POLL_MAX)
    }
}

/// Why the client is connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At start: without auto-start, fail at once if nothing answers.
    First,
    /// After losing zend: without auto-start, give the service manager
    /// [`RECONNECT_DEADLINE`] to bring it back.
    Reconnect,
}

impl Mode {
    /// How long connecting may take in this mode.
    pub fn deadline(self) -> Duration {
        match self {
            Mode::First => START_DEADLINE,
            Mode::Reconnect => RECONNECT_DEADLINE,
        }
    }
}

/// How to start zend: `program serve --auto-started` followed by `extra_args`.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub extra_args: Vec<OsString>,
}

/// Connects to zend, starting it when nothing answers and `launcher` is given
/// (`None`: auto-start is forbidden). `launcher` is asked only once nothing answers.
///
/// A zend we start may exit at once, successfully, because a daemon that is
/// shutting down (or another client's) still holds the lock; so while nothing
/// answers we start it again, at most every [`RESPAWN_INTERVAL`], until the
/// mode's deadline.
pub async fn connect_or_start(
    socket: &Socket,
    mode: Mode,
    launcher: Option<impl FnOnce() -> Result<Launcher, String>>,
) -> Result<UnixStream, String> {
    if let Some(stream) = try_connect(socket).await? {
        return Ok(stream);
    }
    // A service manager owns zend (`zend service install`): wait for its zend
    // (restarting, or being socket-activated) instead of starting another.
    let marker = socket.managed_marker();
    if managed(&marker)? {
        let started = tokio::time::Instant::now();
        let wait = if mode == Mode::First {
            MANAGED_WAIT
        } else {
            RECONNECT_DEADLINE
        };
        while started.elapsed() < wait {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(stream) = try_connect(socket).await? {
                return Ok(stream);
            }
        }
        return Err(format!(
            "no zend answers at {} and a service manager owns it ({} exists); \
             check `zend service status`, or `zend service uninstall` to let zen start zend",
            socket.path.display(),
            marker.display()
        ));
    }
    if launcher.is_none() && mode == Mode::First {
        return Err(format!(
            "zend is not running (nothing answers at {}) and {NO_AUTOSTART_ENV}=1 forbids starting one; \
             start it with `zend serve` (or your service manager), or unset {NO_AUTOSTART_ENV}",
            socket.path.display()
        ));
    }
    let zend = launcher.map(|launch| launch()).transpose()?;
    let started = tokio::time::Instant::now();
    let mut child: Option<(std::process::Child, tokio::time::Instant)> = None;
    let mut delay = FAST_POLL;
    loop {
        if let Some(zend) = &zend {
            let starting = match &mut child {
                Some((process, _)) => match process.try_wait() {
                    Ok(Some(status)) if !status.success() => {
                        return Err(format!(
                            "started {} but it exited with {status}; run `zend serve` in a terminal to see why \
                             (or `zend doctor`)",
                            zend.program.display()
                        ));
                    }
                    Ok(Some(_)) | Err(_) => false,
                    Ok(None) => true,
                },
                None => false,
            };
            let due = child
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= RESPAWN_INTERVAL);
            if !starting && due {
                child = Some((spawn_detached(zend)?, tokio::time::Instant::now()));
            }
        }
        tokio::time::sleep(delay).await;
        if let Some(stream) = try_connect(socket).await? {
            // The child is a detached daemon (or exited because another client's
            // daemon won the race); reap it later without blocking.
            if let Some((mut process, _)) = child {
                std::thread::spawn(move || process.wait());
            }
            return Ok(stream);
        }
        if started.elapsed() > mode.deadline() {
            return Err(match &zend {
                Some(zend) => format!(
                    "started {} but nothing answered at {} within {}s; see zend's log (`zend logs`)",
                    zend.program.display(),
                    socket.path.display(),
                    mode.deadline().as_secs()
                ),
                None => format!(
                    "zend went away and nothing answered at {} within {}s ({NO_AUTOSTART_ENV}=1: \
                     its service manager must restart it)",
                    socket.path.display(),
                    mode.deadline().as_secs()
                ),
            });
        }
        delay = poll_delay(started.elapsed(), delay);
    }
}

/// The socket to zend at `socket`, connected, or `None` when nothing answers
/// there. A directory another user could have prepared, or a server that runs
/// as another user, is an error that says what to remove or set.
pub async fn try_connect(socket: &Socket) -> Result<Option<UnixStream>, String> {
    socket.prepare_dir().map_err(|e| {
        format!(
            "refusing to connect to zend at {}: {e}",
            socket.path.display()
        )
    })?;
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&socket.path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => return Ok(None),
        };
    crate::peer::check_same_user(&stream).map_err(|e| {
        format!(
            "refusing zend's socket at {shown}: {e}; another user may be posing as zend: \
             have {shown} removed (`sudo rm {shown}`), or set {env} to a socket path in a directory of yours",
            shown = socket.path.display(),
            env = crate::paths::SOCKET_ENV
        )
    })?;
    Ok(Some(stream))
}

/// Whether the service marker `marker` is there and counts: one the user does
/// not own is refused rather than believed (another user could have left it
/// to keep zen from starting zend).
fn managed(marker: &Path) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(marker) {
        Err(_) => Ok(false),
        Ok(meta) if meta.is_file() && meta.uid() == crate::paths::current_uid() => Ok(true),
        Ok(meta) => Err(format!(
            "{} is not a file of yours (uid {}): another user may have left it there; remove it",
            marker.display(),
            meta.uid()
        )),
    }
}

/// The gRPC client of zend over `stream`: hyper's HTTP/2 client connection, without
/// tonic's channel (a buffer task and a reconnect layer in front of it, neither of
/// which a client of zend needs: the shim reconnects itself, to a daemon it may
/// have to start).
pub async fn handshake(stream: UnixStream) -> Result<ZendClient<Zend>, String> {
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("cannot open an HTTP/2 connection to zend: {e}"))?;
    // It ends when the connection does (zend closed it, or the client dropped `send`).
    tokio::spawn(connection);
    Ok(ZendClient::new(Zend(send))
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

/// A gRPC channel to zend over one HTTP/2 connection, for `ZendClient`.
#[derive(Clone)]
pub struct Zend(SendRequest<tonic::body::Body>);

/// Each request's :scheme and :authority; zend ignores them, HTTP/2 requires them.
const AUTHORITY: &str = "zend.local";

impl tower::Service<http::Request<tonic::body::Body>> for Zend {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // tonic's generated client sets only the path.
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(http::uri::Authority::from_static(AUTHORITY));
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        Box::pin(self.0.send_request(request))
    }
}

/// Whether the variable `name` passes into a zend started here. An auto-started zend
/// must not depend on which client started it (one passes its own `ANTHROPIC_API_KEY`
/// and `ANTHROPIC_BASE_URL`, another strips everything), so it gets only what locates
/// and connects it: `HOME`, `PATH`, the XDG base directories, locale, `TZ`, `ZEN_*`,
/// proxy and CA variables. Keys come from zen's `.env`.
pub fn passed_to_zend(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    const EXACT: &[&str] = &[
        "HOME",
        "PATH",
        "TZ",
        "LANG",
        "LANGUAGE",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&name)
        || name.starts_with("LC_")
        || name.starts_with("ZEN_")
        || ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"].contains(&upper.as_str())
}

fn spawn_detached(zend: &Launcher) -> Result<std::process::Child, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut command = Command::new(&zend.program);
    // The same zend whichever client starts it: keys come from zen's .env.
    command
        .env_clear()
        .envs(std::env::vars_os().filter(|(name, _)| passed_to_zend(name)))
        .args(["serve", "--auto-started"])
        .args(&zend.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own session: the client's exit or the user's Ctrl-C does not reach it.
        .process_group(0);
    command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", zend.program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_starting_zend_is_polled_every_millisecond_then_less_and_less() {
        let mut at = Duration::ZERO;
        let mut delay = FAST_POLL;
        let mut attempts = Vec::new();
        while at < ms(400) {
            at += delay;
            attempts.push(at);
            delay = poll_delay(at, delay);
        }
        // Every millisecond up to 100 ms: nothing bound in that time waits
        // more than a millisecond for the client.
        let fast: Vec<_> = attempts.iter().take_while(|t| **t <= ms(100)).collect();
        assert_eq!(fast.len(), 100);
        assert!(fast.windows(2).all(|w| *w[1] - *w[0] == ms(1)));
        // Then doubling, capped.
        let gaps: Vec<_> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= SLOW_POLL_MAX));
        assert!(gaps.contains(&ms(2)) && gaps.contains(&ms(32)));
        assert_eq!(*gaps.last().unwrap(), SLOW_POLL_MAX);
        assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "never faster again");
    }
}
