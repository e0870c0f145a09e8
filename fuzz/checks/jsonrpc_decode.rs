//! The session bridge's decoding of one frame: never panics, and every
//! rejection it answers is a JSON-RPC error with a known code.
//! Shared by the fuzz target and its corpus replay in `cargo test`.

use serde_json::Value;
use zend::mcp::transport::{Decoded, decode};

/// Panics when decoding `data` panics or answers a malformed rejection.
pub fn check(data: &[u8]) {
    if let Decoded::Reject(Some(reply)) = decode(data) {
        let reply: Value = serde_json::from_slice(&reply).expect("the reply is JSON");
        assert_eq!(reply["jsonrpc"], "2.0");
        let code = reply["error"]["code"].as_i64().expect("an error code");
        assert!([-32700, -32600, -32601, -32602].contains(&code), "{reply}");
        assert!(!reply["error"]["message"].as_str().unwrap_or("").is_empty());
    }
}
