//! The CLI's side of the socket: connect to a running zend (never start one).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use zen_proto::v1::zend_client::ZendClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "zend is not running (nothing answers at {0}); start it with `zend serve`, or let an MCP client's zen-shim start it"
    )]
    NotRunning(PathBuf),
    #[error("zend answered with an error: {0}")]
    Rpc(String),
}

pub async fn connect(socket: &Path) -> Result<ZendClient<Channel>, ClientError> {
    let path = socket.to_path_buf();
    let channel = Endpoint::from_static("http://zend.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|_| ClientError::NotRunning(socket.to_path_buf()))?;
    Ok(ZendClient::new(channel))
}
