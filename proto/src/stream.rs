//! The Unix socket both ends of a `Zend.Session` speak over, watched for reads only.
//!
//! tokio registers every `UnixStream` with the reactor for reading *and*
//! writing, edge-triggered. On a Unix stream socket the kernel signals
//! "writable" to the writer each time the peer *reads* (it frees the bytes it
//! consumed and wakes whoever waits on the sender's space), so every message
//! one side writes comes back as a wake-up of its own reactor once the other
//! side has read it: an `epoll_wait` that returns only `EPOLLOUT`, and nothing
//! to do. For a call that is one more wake-up of the shim and one more of zend
//! (strace: shim 3 `epoll_wait`s per ping, zend 2), on the critical path of a
//! machine whose CPUs the client, the shim and zend share.
//!
//! [`QuietStream`] registers the socket for reads only. A write goes straight
//! to the socket (it is non-blocking); only when the socket's buffer is full
//! (a message of hundreds of KiB, say) does it register a duplicate of the fd
//! for writability, wait on it, and drop it again once the write went through.
//! Registering a socket that is already writable reports it at once, so no
//! wake-up is lost in between.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A connected Unix stream socket registered with tokio's reactor for reads only.
pub struct QuietStream {
    socket: AsyncFd<OwnedFd>,
    /// A duplicate of the socket registered for writability, only while a
    /// write waits for room.
    room: Option<AsyncFd<OwnedFd>>,
}

impl QuietStream {
    /// Takes `stream` over from tokio's own registration.
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<Self> {
        // `into_std` leaves the socket non-blocking, as a bare write needs.
        let std = stream.into_std()?;
        Self::from_fd(OwnedFd::from(std))
    }

    /// Registers a connected, non-blocking stream socket (one `accept4` with
    /// `SOCK_NONBLOCK` gave, say) with the reactor for reads: one `epoll_ctl`,
    /// where [`QuietStream::new`] undoes tokio's registration first.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let socket = register(fd, Interest::READABLE)?;
        Ok(Self { socket, room: None })
    }

    fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// Writes what `attempt` writes, waiting for room in the socket's buffer
    /// when it has none.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        attempt: impl Fn(i32) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let Some(room) = self.room.as_ref() else {
                match attempt(self.fd()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let dup = self.socket.get_ref().try_clone()?;
                        self.room = Some(register(dup, Interest::WRITABLE)?);
                        continue;
                    }
                    done => return Poll::Ready(done),
                }
            };
            let mut guard = ready!(room.poll_write_ready(cx))?;
            match attempt(self.fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                done => {
                    drop(guard);
                    // Written (or failed): stop watching for room.
                    self.room = None;
                    return Poll::Ready(done);
                }
            }
        }
    }
}

/// `fd` registered with the reactor for `interest` (the shim's stdio registers
/// its socket the same way).
#[inline]
pub fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd`, and nothing closes or replaces it while
    // it is registered.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}

/// `send` flags: no SIGPIPE where the flag exists (elsewhere Rust ignores the
/// signal). Shared with the shim's stdio, which sends on sockets too.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub const NOSIGNAL: libc::c_int = 0;

/// Runs a `recv`/`send` until it is not interrupted: its byte count, or its error
/// (`WouldBlock` means waiting for the next readiness event). Shared with the
/// shim's stdio.
#[inline]
pub fn retrying(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

impl AsyncRead for QuietStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.socket.poll_read_ready(cx))?;
            // SAFETY: recv only writes into the unfilled part, and we mark as
            // initialized exactly the bytes it wrote.
            let unfilled = unsafe { buf.unfilled_mut() };
            let (at, wanted) = (unfilled.as_mut_ptr(), unfilled.len());
            let fd = guard.get_inner().as_raw_fd();
            match retrying(|| unsafe { libc::recv(fd, at.cast(), wanted, 0) }) {
                Ok(n) => {
                    // SAFETY: recv wrote `n` bytes at the start of `unfilled`.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    // A short read emptied the socket (as tokio's own streams
                    // assume): wait for the next edge instead of a recv that
                    // would say EAGAIN.
                    if n > 0 && n < wanted {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for QuietStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, |fd| {
            // SAFETY: send reads at most `buf.len()` bytes from `buf`.
            retrying(|| unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), NOSIGNAL) })
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, |fd| {
            // SAFETY: an IoSlice is ABI-compatible with iovec; sendmsg only
            // reads the slices, and the header points at nothing else.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            header.msg_iovlen = bufs.len().min(libc::c_int::MAX as usize) as _;
            retrying(|| unsafe { libc::sendmsg(fd, &header, NOSIGNAL) })
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // SAFETY: shutdown takes an fd and a constant.
        let rc = unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) };
        if rc == 0 {
            return Poll::Ready(Ok(()));
        }
        let error = io::Error::last_os_error();
        // The peer went first: nothing left to shut.
        if error.raw_os_error() == Some(libc::ENOTCONN) {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(Err(error))
    }
}

#[cfg(feature = "server")]
impl tonic::transport::server::Connected for QuietStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (QuietStream, QuietStream) {
        let (a, b) = tokio::net::UnixStream::pair().expect("socketpair");
        (
            QuietStream::new(a).expect("register a"),
            QuietStream::new(b).expect("register b"),
        )
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_shutdown_ends_the_read() {
        let (mut a, mut b) = pair();
        a.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        b.write_all(b"back").await.unwrap();
        b.shutdown().await.unwrap();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"back");
    }

    #[tokio::test]
    async fn a_write_bigger_than_the_socket_buffer_waits_for_the_reader() {
        // Several MiB: far past the socket's buffer, so the writer must wait
        // for room (the registered duplicate) many times over.
        let (mut a, mut b) = pair();
        let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
            a
        });
        let mut got = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(30), b.read_to_end(&mut got));
        read.await
            .expect("the writer stalled: a wait for room was never woken")
            .unwrap();
        assert!(got == expected, "the bytes arrived changed or cut");
        let a = writer.await.unwrap();
        assert!(a.room.is_none(), "the writability watch outlived the write");
    }

    #[tokio::test]
    async fn vectored_writes_keep_the_order_of_their_slices() {
        let (mut a, mut b) = pair();
        let slices = [io::IoSlice::new(b"one "), io::IoSlice::new(b"two")];
        let n = a.write_vectored(&slices).await.unwrap();
        assert_eq!(n, 7);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (mut a, b) = pair();
        drop(b);
        let mut failed = false;
        for _ in 0..4 {
            if a.write_all(&[0u8; 4096]).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a closed peer kept succeeding");
    }
}
