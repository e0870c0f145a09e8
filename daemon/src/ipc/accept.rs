//! Accepting connections on zend's socket: each one checked and registered with the reactor once.
//!
//! tokio's `UnixListener::accept` registers every accepted stream for reads *and* writes;
//! sessions speak over a [`QuietStream`] (reads only, see `zen_proto::stream`), so taking the
//! stream over from tokio undid that registration and made a new one: two `epoll_ctl`s per
//! connection for nothing, on the path of every session's start. [`Incoming`] calls `accept4`
//! itself (non-blocking and close-on-exec in the same call), checks the peer, and registers the
//! socket once. Connections from another user are closed before any byte is read or written.
//! zend's first writes on each connection (its SETTINGS, the ACK, the response's HEADERS and the
//! first DATA) are held and sent as one (`zen_proto::burst`).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use zen_proto::burst::Burst;
use zen_proto::stream::QuietStream;

/// How long accepting pauses after an error that would repeat at once (out of file descriptors,
/// say), so that it cannot spin and flood the log while the condition lasts.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(100);

/// The listening socket as a stream of accepted, owner-only [`QuietStream`]s,
/// each with its first writes held until the first answer ([`Burst::answer`]).
pub struct Incoming {
    listener: AsyncFd<OwnedFd>,
    /// The user this daemon runs as: the only one let in.
    owner: u32,
    /// Set after an accept error: no accept until it has elapsed.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Accepts that failed so far.
    failed: u64,
}

impl Incoming {
    pub fn new(listener: tokio::net::UnixListener) -> io::Result<Self> {
        // `into_std` leaves the listener non-blocking.
        Self::from_fd(OwnedFd::from(listener.into_std()?))
    }

    /// Accepts on `listener`, a non-blocking listening socket.
    fn from_fd(listener: OwnedFd) -> io::Result<Self> {
        let listener = zen_proto::stream::register(listener, Interest::READABLE)?;
        Ok(Self {
            listener,
            owner: zen_proto::paths::current_uid(),
            pause: None,
            failed: 0,
        })
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        loop {
            let mut guard = ready!(self.listener.poll_read_ready(cx))?;
            match accept(guard.get_inner().as_raw_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                done => return Poll::Ready(done),
            }
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Burst<QuietStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            let fd = match ready!(this.poll_accept(cx)) {
                Ok(fd) => fd,
                // The peer gave up before it was accepted: nothing to do.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    this.failed += 1;
                    tracing::warn!(error = %e, "accept failed; new sessions wait until it succeeds (too many open files? raise the limit with ulimit -n)");
                    this.pause = Some(Box::pin(tokio::time::sleep(PAUSE_AFTER_ERROR)));
                    continue;
                }
            };
            let (uid, pid) = peer(&fd);
            if !super::owner_may_connect(uid, this.owner, pid) {
                continue;
            }
            match QuietStream::from_fd(fd) {
                Ok(stream) => return Poll::Ready(Some(Ok(Burst::answer(stream)))),
                Err(e) => tracing::warn!(error = %e, "cannot register an accepted connection"),
            }
        }
    }
}

/// One connection off `listener`'s queue, non-blocking and close-on-exec.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: null address arguments ask for no peer address; the fd is the listener's.
    let fd = zen_proto::stream::retrying(|| unsafe {
        libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), flags) as isize
    })?;
    // SAFETY: accept4 returned a new fd that nothing else owns (it fits: it came as a c_int).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One connection off `listener`'s queue, non-blocking and close-on-exec.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: borrowed only for this call; ManuallyDrop keeps the listener open.
    let listener = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixListener::from_raw_fd(listener)
    });
    // std sets close-on-exec on what it accepts.
    let (stream, _) = listener.accept()?;
    stream.set_nonblocking(true)?;
    Ok(OwnedFd::from(stream))
}

/// The uid at the other end of a connected Unix socket, and its pid where the
/// platform tells (for the log line of a refused connection).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer(fd: &OwnedFd) -> (io::Result<u32>, Option<i32>) {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return (Err(io::Error::last_os_error()), None);
    }
    (Ok(cred.uid), Some(cred.pid))
}

/// The uid at the other end of a connected Unix socket (no pid on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn peer(fd: &OwnedFd) -> (io::Result<u32>, Option<i32>) {
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: getpeereid writes the two ids it is given pointers to.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return (Err(io::Error::last_os_error()), None);
    }
    (Ok(uid), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn accepts_the_owner_once_registered_for_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut incoming = Incoming::new(tokio::net::UnixListener::bind(&path).unwrap()).unwrap();
        for round in 0..3u8 {
            let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
            let mut server = incoming.next().await.unwrap().unwrap();
            client.write_all(&[round, 1, 2]).await.unwrap();
            let mut got = [0u8; 3];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [round, 1, 2]);
            // Not HTTP/2: held until the flush has been put off its most.
            server.write_all(b"ok").await.unwrap();
            server.flush().await.unwrap();
            let mut answer = [0u8; 2];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"ok");
        }
    }

    /// An accept error that repeats at once (here ENOTSOCK: the "listener" is an eventfd, always
    /// readable, on which every accept fails) pauses accepting instead of looping.
    #[test]
    fn a_repeating_accept_error_pauses_instead_of_spinning() {
        let (done, finished) = std::sync::mpsc::channel();
        // On a thread of its own: without the pause the poll below never returns.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let failed = runtime.block_on(async {
                // SAFETY: eventfd takes a counter and flags; a new fd or -1 comes back.
                let fd = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                assert!(fd >= 0);
                // SAFETY: a new fd that nothing else owns.
                let mut incoming = Incoming::from_fd(unsafe { OwnedFd::from_raw_fd(fd) }).unwrap();
                tokio::select! {
                    next = incoming.next() => panic!("accepted from an eventfd: {:?}", next.is_some()),
                    () = tokio::time::sleep(Duration::from_millis(350)) => {}
                }
                incoming.failed
            });
            let _ = done.send(failed);
        });
        let failed = finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the accept loop never yielded");
        // One try, then one per pause of 100 ms (a loaded machine may fit fewer).
        assert!(
            (1..=5).contains(&failed),
            "{failed} failed accepts in 350 ms"
        );
    }

    #[test]
    fn the_peer_is_the_connecting_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = OwnedFd::from(a);
        let (uid, pid) = peer(&fd);
        assert_eq!(uid.unwrap(), zen_proto::paths::current_uid());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
