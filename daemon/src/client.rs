//! The CLI's side of the socket: connect to a running zend (never start one).
//! The connection and the gRPC client are zen-shim's (`zen_proto::client`).

use std::path::PathBuf;

use zen_proto::paths::Socket;

use zen_proto::client::Zend;
use zen_proto::v1::zend_client::ZendClient;

/// The CLI's gRPC client of zend.
pub type Client = ZendClient<Zend>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "zend is not running (nothing answers at {0}); start it with `zend serve`, or let an MCP client's zen-shim start it"
    )]
    NotRunning(PathBuf),
    /// The socket is not zend's to talk to (another user's server, say).
    #[error("{0}")]
    Connect(String),
    #[error("zend answered with an error: {0}")]
    Rpc(String),
}

/// Connects to the zend at `socket`, checked as zen-shim checks it
/// (`zen_proto::client::try_connect`); never starts one.
pub async fn connect(socket: &Socket) -> Result<Client, ClientError> {
    match zen_proto::client::try_connect(socket).await {
        // A daemon that closes the connection at once is on its way out.
        Ok(Some(stream)) => zen_proto::client::handshake(stream)
            .await
            .map_err(|_| ClientError::NotRunning(socket.path.clone())),
        Ok(None) => Err(ClientError::NotRunning(socket.path.clone())),
        Err(e) => Err(ClientError::Connect(e)),
    }
}
