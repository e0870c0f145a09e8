//! The shim's structural scan: never panics, and on any valid JSON object
//! written without escapes it finds the same top-level `id` and `method` as a
//! real parser. Whatever the bytes, wrapped as a string (escaped as serde_json
//! writes it) in nested `params` before or after the envelope's fields, they
//! never hide or change the top-level `id` and `method`: that is what the
//! scan's string skipping (quotes and backslashes, a word at a time) must get right.
//! The streaming scan (for lines too long to keep) finds what the scan finds,
//! however the line is cut.
//! Shared by the fuzz target and its corpus replay in `cargo test`.

use serde_json::Value;
use zen_shim::scan::{STREAMING_CAPTURE_MAX, Scan, Streaming, scan};

/// Panics when the scan of `data` disagrees with a real parser.
pub fn check(data: &[u8]) {
    let found = scan(data);
    let text = String::from_utf8_lossy(data);
    let string = serde_json::to_string(&text).expect("a string serializes");
    streams_alike(data, found);
    for line in [
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"m","params":{{"x":{string}}}}}"#),
        format!(r#"{{"params":{{"x":[{string},{{"id":{string}}}]}},"method":"m","id":"a"}}"#),
    ] {
        let wrapped = scan(line.as_bytes());
        streams_alike(line.as_bytes(), wrapped);
        assert!(
            matches!(wrapped.id, Some(b"7") | Some(br#""a""#)),
            "id lost in {line:?}"
        );
        assert_eq!(wrapped.method, Some(&b"m"[..]), "method lost in {line:?}");
    }

    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if data.contains(&b'\\') {
        return;
    }
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number());
    let scanned_id = found
        .id
        .map(|raw| serde_json::from_slice::<Value>(raw).expect("the id span is JSON"));
    assert_eq!(
        scanned_id.as_ref(),
        id,
        "id of {:?}",
        String::from_utf8_lossy(data)
    );
    let method = object.get("method").and_then(Value::as_str);
    let scanned_method = found
        .method
        .map(|raw| std::str::from_utf8(raw).expect("utf-8"));
    assert_eq!(scanned_method, method);
}

/// The streaming scan of `line`, fed in pieces of a size `line` picks, agrees
/// with `whole` (its scan) unless an id or method is over its capture limit.
fn streams_alike(line: &[u8], whole: Scan<'_>) {
    if whole.id.is_some_and(|id| id.len() > STREAMING_CAPTURE_MAX)
        || whole
            .method
            .is_some_and(|m| m.len() + 2 > STREAMING_CAPTURE_MAX)
    {
        return;
    }
    let piece = usize::from(line.first().copied().unwrap_or(0) % 13) + 1;
    let mut streaming = Streaming::new();
    for chunk in line.chunks(piece) {
        streaming.feed(chunk);
    }
    assert_eq!(
        streaming.result(),
        whole,
        "streamed in pieces of {piece}: {:?}",
        String::from_utf8_lossy(line)
    );
}
