//! Who is at the other end of zend's socket. Both ends let only their own user
//! through: zend refuses a client of another user before reading a byte, and a
//! client refuses a server that another user runs (the socket's private
//! directory keeps others out too; this is the second lock).

use std::fmt;
use std::io;

use tokio::net::UnixStream;

/// The credentials of the process at the other end of a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// Where the platform tells it (Linux), for log lines.
    pub pid: Option<i32>,
}

/// Why a peer was refused.
#[derive(Debug)]
pub enum PeerError {
    /// The peer runs as another user.
    OtherUser(Peer),
    /// The kernel would not say who the peer is.
    Unknown(io::Error),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::OtherUser(peer) => write!(
                f,
                "the other end of the socket runs as uid {}, not as this user ({})",
                peer.uid,
                crate::paths::current_uid()
            ),
            PeerError::Unknown(e) => {
                write!(f, "cannot tell who is at the other end of the socket: {e}")
            }
        }
    }
}

impl std::error::Error for PeerError {}

/// The peer of `stream` (`SO_PEERCRED`, or `getpeereid` on the BSDs).
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let cred = stream.peer_cred()?;
    Ok(Peer {
        uid: cred.uid(),
        pid: cred.pid(),
    })
}

/// Checks that the process at the other end of `stream` runs as `owner`.
pub fn check_owner(stream: &UnixStream, owner: u32) -> Result<Peer, PeerError> {
    let peer = peer(stream).map_err(PeerError::Unknown)?;
    if peer.uid == owner {
        Ok(peer)
    } else {
        Err(PeerError::OtherUser(peer))
    }
}

/// Checks that the process at the other end of `stream` runs as this user.
pub fn check_same_user(stream: &UnixStream) -> Result<Peer, PeerError> {
    check_owner(stream, crate::paths::current_uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = check_same_user(&a).unwrap();
        assert_eq!(peer.uid, crate::paths::current_uid());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(peer.pid, Some(std::process::id() as i32));
        let other = crate::paths::current_uid().wrapping_add(1);
        assert!(matches!(
            check_owner(&a, other),
            Err(PeerError::OtherUser(p)) if p.uid == crate::paths::current_uid()
        ));
    }
}
