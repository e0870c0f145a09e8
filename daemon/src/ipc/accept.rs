//! Accepting connections on zend's socket: only this user's processes get in.
//!
//! [`Incoming`] is tokio's `UnixListener` as the stream of connections tonic serves, with two
//! things added: the peer's credentials are checked (`zen_proto::peer`) before any byte is read
//! or written, and after an accept error that would repeat at once (out of file descriptors,
//! say) accepting pauses instead of spinning.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};

/// How long accepting pauses after an error that would repeat at once (out of file descriptors,
/// say), so that it cannot spin and flood the log while the condition lasts.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(100);

/// The listening socket as a stream of accepted, owner-only connections.
pub struct Incoming {
    listener: UnixListener,
    /// The user this daemon runs as: the only one let in.
    owner: u32,
    /// Set after an accept error: no accept until it has elapsed.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Accepts that failed so far.
    failed: u64,
}

impl Incoming {
    pub fn new(listener: UnixListener) -> Self {
        Self {
            listener,
            owner: zen_proto::paths::current_uid(),
            pause: None,
            failed: 0,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            let stream = match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, _)) => stream,
                // The peer gave up before it was accepted: nothing to do.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    this.failed += 1;
                    tracing::warn!(error = %e, "accept failed; new sessions wait until it succeeds (too many open files? raise the limit with ulimit -n)");
                    this.pause = Some(Box::pin(tokio::time::sleep(PAUSE_AFTER_ERROR)));
                    continue;
                }
            };
            if super::owner_may_connect(zen_proto::peer::check_owner(&stream, this.owner)) {
                return Poll::Ready(Some(Ok(stream)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn accepts_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut incoming = Incoming::new(UnixListener::bind(&path).unwrap());
        for round in 0..3u8 {
            let mut client = UnixStream::connect(&path).await.unwrap();
            let mut server = incoming.next().await.unwrap().unwrap();
            client.write_all(&[round, 1, 2]).await.unwrap();
            let mut got = [0u8; 3];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [round, 1, 2]);
        }
    }

    #[tokio::test]
    async fn another_user_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut incoming = Incoming::new(UnixListener::bind(&path).unwrap());
        // This process runs as someone else than the daemon's owner.
        incoming.owner = zen_proto::paths::current_uid().wrapping_add(1);
        let mut client = UnixStream::connect(&path).await.unwrap();
        let mut buf = [0u8; 1];
        tokio::select! {
            next = incoming.next() => panic!("accepted another user: {:?}", next.is_some()),
            // The refused connection is closed: the client reads its end.
            read = client.read(&mut buf) => assert_eq!(read.unwrap(), 0),
        }
    }
}
