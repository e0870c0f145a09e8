//! rmcp's `Transport` over one gRPC Session stream: one frame, one JSON-RPC message.
//!
//! rmcp silently skips input it cannot parse, so decoding happens here: a frame
//! that is not JSON gets -32700, a batch, a non-object or a malformed request
//! -32600, an unknown method -32601, a served method with params that do not
//! fit -32602, each written
//! straight back on the stream; the session goes on either way. Only a
//! notification (an object with a `method` and no `id`) is never answered.

use std::borrow::Cow;

use rmcp::RoleServer;
use rmcp::model::{ClientRequest, JsonRpcMessage};
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
///
/// The common case — a well-formed message — is parsed straight into rmcp's
/// type (one pass). Only a frame that does not parse that way goes through
/// [`classify`], the slower `serde_json::Value` path that tells a parse error
/// from an invalid request, so the answers to bad input are the same either way.
pub fn decode(bytes: &[u8]) -> Decoded {
    if bytes.len() > zen_proto::MAX_MESSAGE_BYTES {
        return too_large(bytes);
    }
    if let Some(message) = fast_request(bytes) {
        return Decoded::Message(Box::new(message));
    }
    match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(bytes) {
        Ok(message) => accept(message, || {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|value| value.get("id").cloned())
                .unwrap_or(Value::Null)
        }),
        Err(_) => classify(bytes),
    }
}

/// The requests clients send most (`tools/call`, `ping`, `tools/list`) and the two messages that
/// open every session (`initialize`, `notifications/initialized`), decoded straight into their
/// rmcp type. rmcp's general decoder buffers the message and tries each kind of message,
/// then each of its ~20 request types in turn (one error built and dropped per miss: 13 for
/// `tools/call`), which cost ~30k instructions per call. Here one pass reads the envelope —
/// exactly `jsonrpc`, `id`, `method`, `params`, nothing else — and a second decodes the request
/// with rmcp's own deserializer for that method (which moves `params._meta` into the request's
/// extensions, as the general path does). Anything else, or any failure, returns `None` and
/// takes the general path, so its answers to bad input stay the same. (The general decoder spent
/// ~25k instructions on a session's `initialize`: untagged and flattened models buffer it into
/// serde's `Content` first.)
fn fast_request(bytes: &[u8]) -> Option<RxJsonRpcMessage<RoleServer>> {
    use rmcp::model::{JsonRpcRequest, JsonRpcVersion2_0, RequestId};
    use serde::de::IgnoredAny;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        #[allow(dead_code)]
        jsonrpc: JsonRpcVersion2_0,
        id: RequestId,
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(default)]
        #[allow(dead_code)]
        params: Option<IgnoredAny>,
    }

    let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) else {
        return fast_notification(bytes);
    };
    let request = match &*envelope.method {
        "initialize" => ClientRequest::InitializeRequest(serde_json::from_slice(bytes).ok()?),
        "tools/call" => ClientRequest::CallToolRequest(serde_json::from_slice(bytes).ok()?),
        "ping" => ClientRequest::PingRequest(serde_json::from_slice(bytes).ok()?),
        "tools/list" => ClientRequest::ListToolsRequest(serde_json::from_slice(bytes).ok()?),
        _ => return None,
    };
    Some(JsonRpcMessage::Request(JsonRpcRequest::new(
        envelope.id,
        request,
    )))
}

/// `notifications/initialized`, which every session sends once, decoded as [`fast_request`]
/// decodes requests: an envelope of exactly `jsonrpc`, `method` and `params` (no `id`: with one,
/// even `null`, it is not a notification), then rmcp's own deserializer.
fn fast_notification(bytes: &[u8]) -> Option<RxJsonRpcMessage<RoleServer>> {
    use rmcp::model::{ClientNotification, JsonRpcNotification, JsonRpcVersion2_0};
    use serde::de::IgnoredAny;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        #[allow(dead_code)]
        jsonrpc: JsonRpcVersion2_0,
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(default)]
        #[allow(dead_code)]
        params: Option<IgnoredAny>,
    }

    let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
    let notification = match &*envelope.method {
        "notifications/initialized" => {
            ClientNotification::InitializedNotification(serde_json::from_slice(bytes).ok()?)
        }
        _ => return None,
    };
    Some(JsonRpcMessage::Notification(JsonRpcNotification {
        jsonrpc: JsonRpcVersion2_0,
        notification,
    }))
}

/// A message rmcp parsed, or the reply when it is a request zend does not
/// serve (rmcp takes an unknown method, or a known one whose params do not
/// fit, for a custom request). `id` gives the request's id for that reply.
fn accept(message: RxJsonRpcMessage<RoleServer>, id: impl FnOnce() -> Value) -> Decoded {
    match message {
        JsonRpcMessage::Request(request) => match &request.request {
            // zend serves no custom methods, and rmcp's own answer names
            // only the method (nothing at all for "").
            ClientRequest::CustomRequest(custom) => {
                let id = id();
                let method = truncate(&custom.method, 100);
                Decoded::Reject(Some(
                    match params_problem(&custom.method, custom.params.clone()) {
                        Some(problem) => error_reply(
                            &id,
                            error_code::INVALID_PARAMS,
                            &format!("Invalid params for {method}: {problem}"),
                        ),
                        None => error_reply(
                            &id,
                            error_code::METHOD_NOT_FOUND,
                            &format!(
                                "Method not found: {method:?}; zend serves initialize, \
                                 server/discover, ping, tools/list, tools/call, prompts/list, prompts/get, resources/list, \
                                 resources/templates/list and resources/read"
                            ),
                        ),
                    },
                ))
            }
            _ => Decoded::Message(Box::new(JsonRpcMessage::Request(request))),
        },
        message => Decoded::Message(Box::new(message)),
    }
}

/// The slow path for a frame rmcp's type did not take: parse it as a
/// A message over [`zen_proto::MAX_MESSAGE_BYTES`]: -32600 with its id (read
/// without building the rest), unless it is a notification.
fn too_large(bytes: &[u8]) -> Decoded {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        method: Option<serde::de::IgnoredAny>,
    }
    let envelope = serde_json::from_slice::<Envelope>(bytes).ok();
    let id = envelope.as_ref().and_then(|e| e.id.clone());
    if id.is_none() && envelope.is_some_and(|e| e.method.is_some()) {
        return Decoded::Reject(None);
    }
    let message = format!(
        "the message is {} bytes; zen takes at most {} bytes per message: pass large content as files (absolute paths) instead",
        bytes.len(),
        zen_proto::MAX_MESSAGE_BYTES
    );
    Decoded::Reject(Some(error_reply(
        &id.unwrap_or(Value::Null),
        error_code::INVALID_REQUEST,
        &message,
    )))
}

/// `Value` to say what is wrong (-32700, -32600), or decode it from there
/// (the two parsers differ on a few edge cases, such as duplicate keys).
fn classify(bytes: &[u8]) -> Decoded {
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
    if !value.is_object() {
        return Decoded::Reject(Some(error_reply(
            &Value::Null,
            error_code::INVALID_REQUEST,
            "Invalid Request: a JSON-RPC message is a JSON object",
        )));
    }
    let id = value.get("id").cloned();
    let notification = id.is_none() && value.get("method").is_some_and(Value::is_string);
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        Ok(message) => accept(message, || id.unwrap_or(Value::Null)),
        // A notification gets no reply, even a malformed one.
        Err(_) if notification => Decoded::Reject(None),
        Err(e) => Decoded::Reject(Some(error_reply(
            &id.unwrap_or(Value::Null),
            error_code::INVALID_REQUEST,
            &format!("Invalid Request: {e}"),
        ))),
    }
}

/// At most `max` characters of `text`, marked when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Why `params` do not fit `method`, for the methods zend serves.
fn params_problem(method: &str, params: Option<Value>) -> Option<String> {
    use rmcp::model::{
        CallToolRequestParams, GetPromptRequestParams, InitializeRequestParams,
        PaginatedRequestParams,
    };
    let params = params.unwrap_or(Value::Null);
    let fits = match method {
        "initialize" => serde_json::from_value::<InitializeRequestParams>(params).map(drop),
        "tools/call" => serde_json::from_value::<CallToolRequestParams>(params).map(drop),
        "prompts/get" => serde_json::from_value::<GetPromptRequestParams>(params).map(drop),
        "tools/list" | "prompts/list" => {
            serde_json::from_value::<Option<PaginatedRequestParams>>(params).map(drop)
        }
        "ping" => return Some("ping takes no params".into()),
        _ => return None,
    };
    Some(match fits {
        Err(e) => e.to_string(),
        Ok(()) => "they do not match the MCP schema".into(),
    })
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
    fn a_message_over_the_limit_gets_invalid_request_with_its_id() {
        let padding = "x".repeat(zen_proto::MAX_MESSAGE_BYTES);
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"version","arguments":{{"p":"{padding}"}}}}}}"#
        );
        let reply = reply_of(request.as_bytes());
        assert_eq!(reply["id"], 7, "{reply}");
        assert_eq!(reply["error"]["code"], -32600);
        let notification = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"p":"{padding}"}}}}"#
        );
        assert!(matches!(
            decode(notification.as_bytes()),
            Decoded::Reject(None)
        ));
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
    fn json_that_is_not_a_message_gets_invalid_request() {
        for line in [
            &b"null"[..],
            b"3",
            b"\"ping\"",
            b"{}",
            b"{\"jsonrpc\":\"2.0\"}",
        ] {
            let reply = reply_of(line);
            assert_eq!(reply["error"]["code"], -32600, "{reply}");
            assert_eq!(reply["id"], Value::Null);
        }
        // A malformed notification is still not answered.
        assert_eq!(
            reply_of(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}"#),
            Value::Null
        );
    }

    #[test]
    fn served_methods_with_bad_params_get_invalid_params_not_method_not_found() {
        let reply = reply_of(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#);
        assert_eq!(reply["id"], 3);
        assert_eq!(reply["error"]["code"], -32602);
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("tools/call") && message.contains("name"),
            "{message}"
        );
        let reply = reply_of(br#"{"jsonrpc":"2.0","id":4,"method":"","params":{}}"#);
        assert_eq!(reply["error"]["code"], -32601);
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("\"\"") && message.contains("tools/call"),
            "{message}"
        );
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert_eq!(reply_of(deep.as_bytes())["error"]["code"], -32700);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(reply_of(deep.as_bytes())["error"]["code"], -32700);
    }

    /// `frame` decoded on the fast path and by rmcp's general decoder, checked to be the same JSON.
    fn fast_and_general(
        frame: &[u8],
    ) -> (RxJsonRpcMessage<RoleServer>, RxJsonRpcMessage<RoleServer>) {
        let fast = fast_request(frame)
            .unwrap_or_else(|| panic!("not on the fast path: {}", String::from_utf8_lossy(frame)));
        let general = serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(frame).unwrap();
        assert_eq!(
            serde_json::to_value(&fast).unwrap(),
            serde_json::to_value(&general).unwrap(),
            "{}",
            String::from_utf8_lossy(frame)
        );
        (fast, general)
    }

    /// The fast path decodes what rmcp's general decoder does, `_meta` and all.
    #[test]
    fn fast_path_agrees_with_rmcp() {
        use rmcp::model::GetExtensions;
        let frames: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat","arguments":{"prompt":"hi","n":[1,2.5,null,{"a":true}]}}}"#,
            br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"version","_meta":{"progressToken":7}}}"#,
            br#"{"params":{"name":"x","arguments":{}},"method":"tools/call","id":-3,"jsonrpc":"2.0"}"#,
            br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"c1"}}"#,
            br#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":null}"#,
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{}},"clientInfo":{"name":"claude-code","version":"2.0.1"},"_meta":{"x":1}}}"#,
            br#"{"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"c","version":"1","title":"C"}},"jsonrpc":"2.0","id":"i"}"#,
        ];
        // The session's notification, with and without params.
        for frame in [
            &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
            br#"{"method":"notifications/initialized","params":{"_meta":{"k":"v"}},"jsonrpc":"2.0"}"#,
        ] {
            let (fast, _) = fast_and_general(frame);
            assert!(matches!(fast, JsonRpcMessage::Notification(_)));
        }
        for frame in frames {
            let (fast, general) = fast_and_general(frame);
            let (JsonRpcMessage::Request(fast), JsonRpcMessage::Request(general)) = (fast, general)
            else {
                panic!("not a request");
            };
            assert_eq!(fast.id, general.id);
            assert_eq!(
                fast.request
                    .extensions()
                    .get::<rmcp::model::RequestMetaObject>(),
                general
                    .request
                    .extensions()
                    .get::<rmcp::model::RequestMetaObject>()
            );
        }
        // Everything else takes the general path (and gets its answers).
        for frame in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"nope"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"extra":1}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized","extra":1}"#,
        ] {
            assert!(
                fast_request(frame).is_none(),
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn valid_requests_decode() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(matches!(decode(line), Decoded::Message(_)));
    }
}
