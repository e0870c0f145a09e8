//! The shim's structural scan: never panics, and on any valid JSON object
//! written without escapes it finds the same top-level `id` and `method` as a
//! real parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use zen_shim::scan::scan;

fuzz_target!(|data: &[u8]| {
    let found = scan(data);
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
    assert_eq!(scanned_id.as_ref(), id, "id of {:?}", String::from_utf8_lossy(data));
    let method = object.get("method").and_then(Value::as_str);
    let scanned_method = found.method.map(|raw| std::str::from_utf8(raw).expect("utf-8"));
    assert_eq!(scanned_method, method);
});
