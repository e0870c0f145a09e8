//! A connection's first writes, sent as one write instead of several.
//!
//! **The shim** opens a session with the HTTP/2 preface, its SETTINGS (and a
//! window update), the ACK of zend's SETTINGS, the request's HEADERS and its
//! first DATA frame (the client's `initialize`). h2 hands each to the socket as
//! it is made, from three tasks (the h2 connection, hyper's dispatcher, the
//! request body's pipe), so they went out as five writes; and since zend waits
//! on the other end of a Unix socket, often on the same CPU, each write woke
//! zend, which preempted the shim to read a few bytes and sleep again: five
//! round trips through the scheduler before the answer could start (~30–40 µs
//! each, `perf sched`; BENCHMARKS.md, session 16). [`Burst::new`] holds what is
//! written until a flush finds that nothing new was written since the flush
//! before it (or the hold is big, or has been put off a few times): each flush
//! it puts off wakes the writer again at once, which lets the tasks queued
//! behind it add their frames first.
//!
//! **zend** answers with its SETTINGS (written as soon as it accepts, before
//! it has read a byte), the ACK of the shim's SETTINGS with a window update,
//! the response's HEADERS and the first DATA frame (the `initialize` answer):
//! four writes, from the connection's task, the request's task and the
//! session's, each a `sendmsg` and three of them a wake-up of the shim, which
//! waits for the answer. [`Burst::answer`] holds them until the first frame of an
//! answer is among them (a DATA frame, a HEADERS frame that ends its stream,
//! RST_STREAM or GOAWAY). Before the peer's first bytes arrive a flush is let
//! through without sending anything (in HTTP/2 the client speaks first: its
//! preface comes without waiting for the server, so nothing held here keeps it
//! waiting); after that each flush is put off as above, at most
//! [`MAX_ANSWER_DEFERRALS`] times, so an answer that takes longer (a request
//! that must wait for something) only costs the writes going out as before.
//!
//! Either way everything held then goes out in one write, and from there on
//! writes pass straight through, so a session's later messages (up to
//! megabytes) are never copied here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a flush is put off for the shim's first burst.
pub const MAX_DEFERRALS: u8 = 4;
/// The most a flush is put off while zend waits for the first frame of an answer.
pub const MAX_ANSWER_DEFERRALS: u8 = 16;
/// Held bytes past which the burst goes out at once (a large first message).
pub const MAX_HELD: usize = 64 * 1024;

/// A stream whose first writes are held and sent together; see the module docs.
pub struct Burst<S> {
    inner: S,
    state: State,
    until: Until,
}

/// When the first burst goes out.
enum Until {
    /// A flush finds nothing new since the flush before (the shim).
    Quiet,
    /// The first frame of an answer is held (zend); `heard`: the peer's first
    /// bytes have been read, `scanned`: held bytes up to here are whole frames
    /// already looked at.
    Answer { heard: bool, scanned: usize },
}

enum State {
    /// Still collecting: `held` bytes, `at_last_flush` of them there at the
    /// previous flush, which was put off `deferred` times.
    Holding {
        held: Vec<u8>,
        at_last_flush: usize,
        deferred: u8,
    },
    /// Sending what was held; `sent` bytes of it are out.
    Releasing {
        held: Vec<u8>,
        sent: usize,
    },
    Passing,
}

impl<S> Burst<S> {
    /// The shim's: held until a flush finds nothing new.
    pub fn new(inner: S) -> Self {
        Self::holding(inner, Until::Quiet)
    }

    /// zend's: held until the first frame of an answer (see the module docs).
    pub fn answer(inner: S) -> Self {
        Self::holding(
            inner,
            Until::Answer {
                heard: false,
                scanned: 0,
            },
        )
    }

    fn holding(inner: S, until: Until) -> Self {
        Self {
            inner,
            state: State::Holding {
                held: Vec::new(),
                at_last_flush: 0,
                deferred: 0,
            },
            until,
        }
    }

    /// Whether the first burst has gone out (writes now pass through); for the tests.
    #[cfg(test)]
    fn released(&self) -> bool {
        matches!(self.state, State::Passing)
    }
}

/// HTTP/2 frame types that begin or end an answer (RFC 9113, section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
/// The END_STREAM flag of a HEADERS frame.
const END_STREAM: u8 = 0x1;

/// Whether the whole frames in `held` from `*scanned` on include the first
/// frame of an answer; moves `*scanned` past the whole frames it looked at.
/// zend's writes begin at a frame boundary (a server sends no preface string).
fn holds_an_answer(held: &[u8], scanned: &mut usize) -> bool {
    while let Some(header) = held.get(*scanned..*scanned + 9) {
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        *scanned += 9 + len;
        let answer = match kind {
            DATA => stream != 0,
            HEADERS => flags & END_STREAM != 0,
            RST_STREAM | GOAWAY => true,
            _ => false,
        };
        if answer {
            return true;
        }
    }
    false
}

impl<S: AsyncWrite + Unpin> Burst<S> {
    /// Writes out whatever is held; `Ready` once writes pass through.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Passing => return Poll::Ready(Ok(())),
                State::Holding { held, .. } => {
                    let held = std::mem::take(held);
                    self.state = State::Releasing { held, sent: 0 };
                }
                State::Releasing { held, sent } => {
                    if *sent == held.len() {
                        self.state = State::Passing;
                        continue;
                    }
                    let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &held[*sent..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *sent += n;
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Burst<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Only zend's rule, and only until its first write goes out, wants to know.
        let Until::Answer {
            heard: heard @ false,
            ..
        } = &mut this.until
        else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        *heard = buf.filled().len() > before;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Burst<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let State::Holding { held, .. } = &mut this.state {
            let len: usize = bufs.iter().map(|b| b.len()).sum();
            if held.len() + len <= MAX_HELD {
                for buf in bufs {
                    held.extend_from_slice(buf);
                }
                return Poll::Ready(Ok(len));
            }
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let State::Holding {
            held,
            at_last_flush,
            deferred,
        } = &mut this.state
        {
            let put_off = match &mut this.until {
                Until::Quiet => held.len() > *at_last_flush && *deferred < MAX_DEFERRALS,
                // The peer has not spoken yet: it is not waiting for these.
                Until::Answer { heard: false, .. } => return Poll::Ready(Ok(())),
                Until::Answer { scanned, .. } => {
                    !holds_an_answer(held, scanned) && *deferred < MAX_ANSWER_DEFERRALS
                }
            };
            if put_off {
                // Others may have more to add: let them run first.
                *at_last_flush = held.len();
                *deferred += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(feature = "server")]
impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Burst<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;
    use tokio::io::AsyncWriteExt;

    /// Records each write it is given as one entry, taking at most `limit`
    /// bytes of it (as a socket with little room would).
    #[derive(Clone)]
    struct Writes {
        log: Arc<Mutex<Vec<Vec<u8>>>>,
        limit: usize,
    }

    impl Writes {
        fn new(limit: usize) -> Self {
            Self {
                log: Arc::default(),
                limit,
            }
        }
        fn log(&self) -> Vec<Vec<u8>> {
            self.log.lock().unwrap().clone()
        }
    }

    /// The peer's side: every read gets the client's preface.
    impl AsyncRead for Writes {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            let n = preface.len().min(buf.remaining());
            buf.put_slice(&preface[..n]);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.log.lock().unwrap().push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(burst: &mut Burst<Writes>, bytes: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        let written = Pin::new(burst).poll_write(&mut cx, bytes);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    fn flush(burst: &mut Burst<Writes>) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(burst).poll_flush(&mut cx)
    }

    #[test]
    fn writes_between_put_off_flushes_go_out_as_one_write() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::new(writes.clone());
        write(&mut burst, b"preface ");
        assert!(flush(&mut burst).is_pending(), "something new: put off");
        // The tasks queued behind the flushing one add theirs.
        write(&mut burst, b"headers ");
        write(&mut burst, b"data");
        assert!(flush(&mut burst).is_pending());
        assert!(writes.log().is_empty(), "nothing goes out while held");
        // Nothing new since the last flush: out it goes.
        assert!(matches!(flush(&mut burst), Poll::Ready(Ok(()))));
        assert_eq!(writes.log(), [b"preface headers data".to_vec()]);
        assert!(burst.released());
        // Then writes pass straight through.
        write(&mut burst, b"later");
        assert_eq!(writes.log().len(), 2);
        assert!(matches!(flush(&mut burst), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_flush_is_put_off_at_most_max_deferrals_times() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::new(writes.clone());
        let mut pending = 0;
        loop {
            write(&mut burst, b"more");
            match flush(&mut burst) {
                Poll::Pending => pending += 1,
                Poll::Ready(done) => {
                    done.unwrap();
                    break;
                }
            }
        }
        assert_eq!(pending, usize::from(MAX_DEFERRALS));
        assert_eq!(
            writes.log().concat().len(),
            4 * (usize::from(MAX_DEFERRALS) + 1)
        );
    }

    #[tokio::test]
    async fn a_put_off_flush_wakes_its_task_so_the_burst_always_goes_out() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::new(writes.clone());
        burst.write_all(b"preface").await.unwrap();
        burst.flush().await.unwrap();
        assert_eq!(writes.log(), [b"preface".to_vec()]);
    }

    #[tokio::test]
    async fn a_short_write_sends_the_rest_of_the_burst_after_it_in_order() {
        let writes = Writes::new(5);
        let mut burst = Burst::new(writes.clone());
        burst.write_all(b"head ").await.unwrap();
        let big: Vec<u8> = (0..=MAX_HELD as u32).map(|i| (i % 251) as u8).collect();
        // Past MAX_HELD: the held bytes go out first, then the big write itself.
        burst.write_all(&big).await.unwrap();
        assert!(burst.released());
        let all = writes.log().concat();
        assert_eq!(&all[..5], b"head ");
        assert_eq!(&all[5..], &big[..]);
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_held_first() {
        let writes = Writes::new(3);
        let mut burst = Burst::new(writes.clone());
        burst.write_all(b"last words").await.unwrap();
        burst.shutdown().await.unwrap();
        assert_eq!(writes.log().concat(), b"last words");
    }

    /// An HTTP/2 frame of `kind` with `flags` on `stream`, `payload` bytes long.
    fn frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
        let len = u32::try_from(payload).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.resize(9 + payload, 0xab);
        frame
    }

    fn hear(burst: &mut Burst<Writes>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut space = [0u8; 64];
        let mut buf = ReadBuf::new(&mut space);
        assert!(Pin::new(burst).poll_read(&mut cx, &mut buf).is_ready());
        assert!(!buf.filled().is_empty());
    }

    #[test]
    fn zend_holds_its_writes_until_the_first_frame_of_an_answer() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::answer(writes.clone());
        let settings = frame(0x4, 0, 0, 18);
        write(&mut burst, &settings);
        // The peer has not spoken: the flush goes through, nothing is sent.
        assert!(matches!(flush(&mut burst), Poll::Ready(Ok(()))));
        assert!(writes.log().is_empty());
        hear(&mut burst);
        let (ack, window) = (frame(0x4, 0x1, 0, 0), frame(0x8, 0, 0, 4));
        write(&mut burst, &ack);
        write(&mut burst, &window);
        assert!(flush(&mut burst).is_pending(), "no answer yet");
        // Response HEADERS that do not end the stream are not an answer yet.
        let headers = frame(HEADERS, 0x4, 1, 38);
        write(&mut burst, &headers);
        assert!(flush(&mut burst).is_pending());
        assert!(
            flush(&mut burst).is_pending(),
            "nothing new, still no answer"
        );
        // Half a frame header is not looked at.
        let data = frame(DATA, 0, 1, 413);
        write(&mut burst, &data[..5]);
        assert!(flush(&mut burst).is_pending());
        assert!(writes.log().is_empty());
        write(&mut burst, &data[5..]);
        assert!(matches!(flush(&mut burst), Poll::Ready(Ok(()))));
        assert_eq!(
            writes.log(),
            [[settings, ack, window, headers, data].concat()]
        );
        assert!(burst.released());
    }

    #[test]
    fn a_trailers_only_answer_or_a_reset_ends_the_hold() {
        for ending in [
            frame(HEADERS, END_STREAM | 0x4, 1, 20),
            frame(RST_STREAM, 0, 1, 4),
            frame(GOAWAY, 0, 0, 8),
        ] {
            let writes = Writes::new(usize::MAX);
            let mut burst = Burst::answer(writes.clone());
            hear(&mut burst);
            write(&mut burst, &frame(0x4, 0, 0, 6));
            assert!(flush(&mut burst).is_pending());
            write(&mut burst, &ending);
            assert!(matches!(flush(&mut burst), Poll::Ready(Ok(()))));
            assert_eq!(writes.log().len(), 1);
        }
    }

    #[test]
    fn zend_puts_a_flush_off_at_most_max_answer_deferrals_times() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::answer(writes.clone());
        hear(&mut burst);
        write(&mut burst, &frame(0x4, 0x1, 0, 0));
        let mut pending = 0;
        while flush(&mut burst).is_pending() {
            pending += 1;
        }
        assert_eq!(pending, usize::from(MAX_ANSWER_DEFERRALS));
        assert_eq!(writes.log().len(), 1);
    }

    #[tokio::test]
    async fn zend_sends_what_it_held_when_the_answer_is_slow() {
        let writes = Writes::new(usize::MAX);
        let mut burst = Burst::answer(writes.clone());
        let mut space = [0u8; 64];
        tokio::io::AsyncReadExt::read(&mut burst, &mut space)
            .await
            .unwrap();
        burst.write_all(&frame(0x4, 0x1, 0, 0)).await.unwrap();
        // Each put-off flush wakes its task: the flush finishes on its own.
        burst.flush().await.unwrap();
        assert_eq!(writes.log().len(), 1);
        assert!(burst.released());
    }
}
