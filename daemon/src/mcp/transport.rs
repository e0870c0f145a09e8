//! rmcp's `Transport` over one gRPC Session stream: one frame, one JSON-RPC message.
//!
//! rmcp silently skips input it cannot parse, so decoding happens here: a frame
//! that is not JSON gets -32700, a batch or a malformed request -32600, each
//! written straight back on the stream; the session goes on either way.

use std::borrow::Cow;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::Status;
use zen_proto::v1::Frame;

use super::error_code;

/// The outbound half: frames to the shim, or a final status that ends the stream.
pub type Outbound = mpsc::Sender<Result<Frame, Status>>;

pub struct FrameTransport<S> {
    inbound: S,
    outbound: Outbound,
}

impl<S> FrameTransport<S> {
    pub fn new(inbound: S, outbound: Outbound) -> Self {
        Self { inbound, outbound }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the shim is gone")]
    Closed,
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What one inbound frame turned out to be.
pub enum Decoded {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// Not a message rmcp can take; this reply (if any) goes back as is.
    Reject(Option<Vec<u8>>),
}

/// Decodes one frame, or builds the JSON-RPC error reply for it.
pub fn decode(bytes: &[u8]) -> Decoded {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            return Decoded::Reject(Some(error_reply(
                &Value::Null,
                error_code::PARSE_ERROR,
                &format!(
                    "Parse error: the line is not valid JSON ({e}); send one JSON-RPC message per line"
                ),
            )));
        }
    };
    if value.is_array() {
        return Decoded::Reject(Some(error_reply(
            &Value::Null,
            error_code::INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported by MCP; send one message per line",
        )));
    }
    let id = value.get("id").cloned();
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        Ok(message) => Decoded::Message(Box::new(message)),
        // A notification gets no reply, even a malformed one.
        Err(_) if id.is_none() => Decoded::Reject(None),
        Err(e) => Decoded::Reject(Some(error_reply(
            &id.unwrap_or(Value::Null),
            error_code::INVALID_REQUEST,
            &format!("Invalid Request: {e}"),
        ))),
    }
}

/// A JSON-RPC error response, serialized.
pub fn error_reply(id: &Value, code: i32, message: &str) -> Vec<u8> {
    let reply = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    reply.to_string().into_bytes()
}

impl<S> Transport<RoleServer> for FrameTransport<S>
where
    S: futures::Stream<Item = Result<Frame, Status>> + Send + Unpin + 'static,
{
    type Error = TransportError;

    fn name() -> Cow<'static, str> {
        "zen-grpc-frames".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        async move {
            let json = serde_json::to_vec(&item)?;
            outbound
                .send(Ok(Frame { json: json.into() }))
                .await
                .map_err(|_| TransportError::Closed)
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        use futures::StreamExt;
        loop {
            let frame = match self.inbound.next().await? {
                Ok(frame) => frame,
                Err(status) => {
                    tracing::debug!(%status, "session stream ended with an error");
                    return None;
                }
            };
            match decode(&frame.json) {
                Decoded::Message(message) => return Some(*message),
                Decoded::Reject(reply) => {
                    tracing::info!(bytes = frame.json.len(), "rejected an undecodable frame");
                    if let Some(reply) = reply
                        && self
                            .outbound
                            .send(Ok(Frame { json: reply.into() }))
                            .await
                            .is_err()
                    {
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(bytes: &[u8]) -> Value {
        match decode(bytes) {
            Decoded::Reject(Some(reply)) => serde_json::from_slice(&reply).unwrap(),
            Decoded::Reject(None) => Value::Null,
            Decoded::Message(_) => panic!("decoded {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn garbage_gets_parse_error_with_null_id() {
        let reply = reply_of(b"{not json");
        assert_eq!(reply["error"]["code"], -32700);
        assert_eq!(reply["id"], Value::Null);
        let reply = reply_of(b"\xff\xfe");
        assert_eq!(reply["error"]["code"], -32700);
    }

    #[test]
    fn batches_are_refused() {
        assert_eq!(
            reply_of(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]")["error"]["code"],
            -32600
        );
    }

    #[test]
    fn malformed_request_keeps_its_id() {
        let reply = reply_of(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":"nope"}"#);
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["error"]["code"], -32600);
    }

    #[test]
    fn valid_requests_decode() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(matches!(decode(line), Decoded::Message(_)));
    }
}
