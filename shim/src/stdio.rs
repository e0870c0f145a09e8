//! The client's stdin and stdout, driven by the runtime's reactor whenever they allow it.
//!
//! `tokio::io::stdin()`/`stdout()` do every read, write and flush on tokio's
//! blocking pool: each message crosses threads several times (8–12 context
//! switches and ~130 µs of CPU per call, BENCHMARKS.md). So the shim looks at
//! what its fds 0 and 1 are (`fstat`, once each) and drives them from the
//! current-thread runtime when it can:
//!
//! - **A pipe** (how most clients start servers): reopened through
//!   `/proc/self/fd/N` with `O_NONBLOCK`. That opens a *new* open file
//!   description of the same pipe, so the flag never reaches the description the
//!   client (or anyone else) shares; the new fd is close-on-exec, so the zend the
//!   shim may start never holds the client's pipes. Without `/proc` (macOS), or
//!   when the open fails (say, the reader of stdout is already gone), the fd
//!   falls back below.
//! - **A stream socket** (Node/libuv clients such as Claude Code hand servers
//!   `socketpair`s): a socket cannot be reopened, and `O_NONBLOCK` on it would
//!   change the description the client's process tree may share (a wrapper
//!   script reading the same fd would start seeing `EAGAIN`, and the flag would
//!   outlive the shim). So the shim never sets it: it registers a close-on-exec
//!   dup of the fd with the reactor and passes `MSG_DONTWAIT` to every
//!   `recv`/`send`, which makes that one call non-blocking and leaves the
//!   description as it found it.
//! - **Anything else** (a tty, a regular file, `/dev/null`, a closed fd, a
//!   datagram socket): today's `tokio::io::stdin()`/`stdout()`.
//!
//! The behaviour is the same on every path: a read of 0 bytes (or an error) is
//! the end of input; a write waits while the reader is slow (backpressure) and
//! fails with `EPIPE` (never `SIGPIPE`: Rust ignores it, and sockets are sent
//! `MSG_NOSIGNAL`) once the reader is gone.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use zen_proto::stream::{NOSIGNAL, register, retrying};

/// What an fd is, as far as choosing how to drive it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    StreamSocket,
    Other,
}

impl Kind {
    /// Classifies from `fstat`'s `st_mode` and, for sockets, `SO_TYPE`.
    pub fn classify(mode: libc::mode_t, socket_type: impl FnOnce() -> Option<libc::c_int>) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFIFO => Kind::Pipe,
            libc::S_IFSOCK if socket_type() == Some(libc::SOCK_STREAM) => Kind::StreamSocket,
            _ => Kind::Other,
        }
    }

    /// What `fd` is; [`Kind::Other`] when it cannot tell (a closed fd, say).
    pub fn of(fd: RawFd) -> Self {
        // SAFETY: fstat only writes the struct we own; a bad fd is an error return.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut stat) } != 0 {
            return Kind::Other;
        }
        Kind::classify(stat.st_mode, || socket_type(fd))
    }
}

fn socket_type(fd: RawFd) -> Option<libc::c_int> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `kind`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(kind)
}

/// A close-on-exec duplicate of `fd`, sharing its open file description.
fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument and returns a new fd or -1.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// A stream socket registered with the reactor, used with `MSG_DONTWAIT` only.
pub struct Socket(AsyncFd<OwnedFd>);

impl Socket {
    fn new(fd: RawFd, interest: Interest) -> io::Result<Self> {
        Ok(Self(register(dup_cloexec(fd)?, interest)?))
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .async_io(Interest::READABLE, |fd| {
                retrying(|| {
                    // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
                    unsafe {
                        libc::recv(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                        )
                    }
                })
            })
            .await
    }

    async fn send_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = self
                .0
                .async_io(Interest::WRITABLE, |fd| {
                    retrying(|| {
                        // SAFETY: send reads at most `buf.len()` bytes from `buf`.
                        unsafe {
                            libc::send(
                                fd.as_raw_fd(),
                                buf.as_ptr().cast(),
                                buf.len(),
                                libc::MSG_DONTWAIT | NOSIGNAL,
                            )
                        }
                    })
                })
                .await?;
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[sent..];
        }
        Ok(())
    }
}

/// `/proc/self/fd/N`: opening it opens the same pipe anew.
fn proc_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

/// The shim's input.
pub enum Input {
    Pipe(pipe::Receiver),
    Socket(Socket),
    Blocking(tokio::io::Stdin),
}

impl Input {
    /// Stdin, driven the cheapest way it allows. Must run inside the runtime.
    pub fn stdin() -> Self {
        Self::reactor(libc::STDIN_FILENO).unwrap_or_else(|| Input::Blocking(tokio::io::stdin()))
    }

    /// `fd` on the reactor, if it is a pipe or stream socket that allows it.
    fn reactor(fd: RawFd) -> Option<Self> {
        match Kind::of(fd) {
            Kind::Pipe => pipe::OpenOptions::new()
                // fstat said FIFO; `/proc/self/fd/N` cannot name anything else.
                .unchecked(true)
                .open_receiver(proc_path(fd))
                .ok()
                .map(Input::Pipe),
            Kind::StreamSocket => Socket::new(fd, Interest::READABLE).ok().map(Input::Socket),
            Kind::Other => None,
        }
    }

    /// Reads some bytes; `Ok(0)` at end of input.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Pipe(pipe) => pipe.read(buf).await,
            Input::Socket(socket) => socket.recv(buf).await,
            Input::Blocking(stdin) => stdin.read(buf).await,
        }
    }
}

/// The shim's output.
pub enum Output {
    Pipe(pipe::Sender),
    Socket(Socket),
    Blocking(tokio::io::Stdout),
}

impl Output {
    /// Stdout, driven the cheapest way it allows. Must run inside the runtime.
    pub fn stdout() -> Self {
        Self::reactor(libc::STDOUT_FILENO).unwrap_or_else(|| Output::Blocking(tokio::io::stdout()))
    }

    fn reactor(fd: RawFd) -> Option<Self> {
        match Kind::of(fd) {
            Kind::Pipe => pipe::OpenOptions::new()
                .unchecked(true)
                .open_sender(proc_path(fd))
                .ok()
                .map(Output::Pipe),
            Kind::StreamSocket => Socket::new(fd, Interest::WRITABLE).ok().map(Output::Socket),
            Kind::Other => None,
        }
    }

    /// Writes all of `bytes` and pushes them out (nothing stays buffered).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Pipe(pipe) => pipe.write_all(bytes).await,
            Output::Socket(socket) => socket.send_all(bytes).await,
            Output::Blocking(stdout) => {
                stdout.write_all(bytes).await?;
                stdout.flush().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    fn nonblocking(fd: RawFd) -> bool {
        // SAFETY: F_GETFL takes no argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert!(flags >= 0, "F_GETFL failed on fd {fd}");
        flags & libc::O_NONBLOCK != 0
    }

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD takes no argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags & libc::FD_CLOEXEC != 0
    }

    /// A pipe as std files: (read end, write end), both blocking.
    fn pipe_pair() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array we own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds are fresh and owned by nobody else.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn classification_follows_the_file_type_and_socket_type() {
        let never = || -> Option<libc::c_int> { panic!("only sockets are asked their type") };
        assert_eq!(Kind::classify(libc::S_IFIFO | 0o600, never), Kind::Pipe);
        assert_eq!(Kind::classify(libc::S_IFCHR | 0o620, never), Kind::Other);
        assert_eq!(Kind::classify(libc::S_IFREG | 0o644, never), Kind::Other);
        assert_eq!(
            Kind::classify(libc::S_IFSOCK | 0o777, || Some(libc::SOCK_STREAM)),
            Kind::StreamSocket
        );
        assert_eq!(
            Kind::classify(libc::S_IFSOCK | 0o777, || Some(libc::SOCK_DGRAM)),
            Kind::Other
        );
        assert_eq!(Kind::classify(libc::S_IFSOCK, || None), Kind::Other);
    }

    #[test]
    fn real_fds_are_told_apart() {
        let (reader, _writer) = pipe_pair();
        assert_eq!(Kind::of(reader.as_raw_fd()), Kind::Pipe);
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(Kind::of(a.as_raw_fd()), Kind::StreamSocket);
        let file = regular_file("kinds");
        assert_eq!(Kind::of(file.as_raw_fd()), Kind::Other);
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(Kind::of(null.as_raw_fd()), Kind::Other);
        assert_eq!(
            Kind::of(-1),
            Kind::Other,
            "an fd that is not open falls back"
        );
    }

    /// An open regular file (already unlinked).
    fn regular_file(name: &str) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("zen-shim-{}-{name}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[tokio::test]
    async fn a_pipe_is_read_on_a_new_description_until_its_writer_closes() {
        let (reader, mut writer) = pipe_pair();
        let mut input = Input::reactor(reader.as_raw_fd()).unwrap();
        let Input::Pipe(receiver) = &input else {
            panic!("a pipe goes on the reactor");
        };
        assert!(cloexec(receiver.as_raw_fd()), "zend must not inherit it");
        assert!(
            !nonblocking(reader.as_raw_fd()),
            "the client's description is left blocking"
        );
        writer.write_all(b"one\ntwo").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let n = input.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        drop(writer);
        loop {
            let n = input.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"one\ntwo");
    }

    #[tokio::test]
    async fn a_pipe_output_keeps_backpressure_and_reports_a_gone_reader() {
        let (mut reader, writer) = pipe_pair();
        let mut output = Output::reactor(writer.as_raw_fd()).unwrap();
        let Output::Pipe(sender) = &output else {
            panic!("a pipe goes on the reactor");
        };
        assert!(cloexec(sender.as_raw_fd()), "zend must not inherit it");
        assert!(!nonblocking(writer.as_raw_fd()));
        // More than a pipe holds (64 KiB): the write waits for the reader.
        let big = vec![b'x'; 1 << 20];
        let drain = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            while all.len() < 1 << 20 {
                let n = reader.read(&mut buf).unwrap();
                all.extend_from_slice(&buf[..n]);
            }
            all.len()
        });
        output.write_all(&big).await.unwrap();
        assert_eq!(drain.join().unwrap(), 1 << 20);
        let error = output.write_all(b"late\n").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn a_socket_is_driven_without_touching_its_description() {
        let (ours, mut client) = UnixStream::pair().unwrap();
        let mut input = Input::reactor(ours.as_raw_fd()).unwrap();
        let mut output = Output::reactor(ours.as_raw_fd()).unwrap();
        assert!(matches!(input, Input::Socket(_)));
        assert!(matches!(output, Output::Socket(_)));
        assert!(
            !nonblocking(ours.as_raw_fd()),
            "O_NONBLOCK is never set on a shared socket description"
        );
        client.write_all(b"{\"id\":1}\n").unwrap();
        let mut buf = [0u8; 64];
        let n = input.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"{\"id\":1}\n");

        output.write_all(b"answer\n").await.unwrap();
        let mut got = [0u8; 7];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"answer\n");

        // Half-close from the client: end of input, while output still works.
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(input.read(&mut buf).await.unwrap(), 0);
        output.write_all(b"after eof\n").await.unwrap();
        let mut got = [0u8; 10];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"after eof\n");

        drop(client);
        let error = output.write_all(b"gone\n").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn anything_else_is_left_to_the_blocking_fallback() {
        let file = regular_file("fallback");
        assert!(Input::reactor(file.as_raw_fd()).is_none());
        assert!(Output::reactor(file.as_raw_fd()).is_none());
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(Input::reactor(null.as_raw_fd()).is_none());
        let dgram = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert!(Input::reactor(dgram.0.as_raw_fd()).is_none());
    }
}
