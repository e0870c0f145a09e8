//! The shim's first bytes to zend, sent as one write instead of five.
//!
//! Opening a session writes the HTTP/2 preface, the shim's SETTINGS (and a
//! window update), the ACK of zend's SETTINGS, the request's HEADERS and its
//! first DATA frame (the client's `initialize`). h2 hands each to the socket as
//! it is made, from three tasks (the h2 connection, hyper's dispatcher, the
//! request body's pipe), so they went out as five writes; and since zend waits
//! on the other end of a Unix socket, often on the same CPU, each write woke
//! zend, which preempted the shim to read a few bytes and sleep again: five
//! round trips through the scheduler before the answer could start (~30–40 µs
//! each, `perf sched`; BENCHMARKS.md, session 16).
//!
//! [`Burst`] holds what is written until a flush finds that nothing new was
//! written since the flush before it (or the hold is big, or has been put off a
//! few times): each flush it puts off wakes the writer again at once, which
//! lets the tasks queued behind it add their frames first. Then everything held
//! goes out in one write, and from there on writes pass straight through, so a
//! session's later messages (up to megabytes) are never copied here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a flush is put off for the first burst.
pub const MAX_DEFERRALS: u8 = 4;
/// Held bytes past which the burst goes out at once (a large first message).
pub const MAX_HELD: usize = 64 * 1024;

/// A stream whose first writes are held and sent together; see the module docs.
pub struct Burst<S> {
    inner: S,
    state: State,
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
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Holding {
                held: Vec::new(),
                at_last_flush: 0,
                deferred: 0,
            },
        }
    }

    /// Whether the first burst has gone out (writes now pass through); for the tests.
    #[cfg(test)]
    fn released(&self) -> bool {
        matches!(self.state, State::Passing)
    }
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
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
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
            && held.len() > *at_last_flush
            && *deferred < MAX_DEFERRALS
        {
            // Something new since the last flush: others may have more to add.
            *at_last_flush = held.len();
            *deferred += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
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
}
