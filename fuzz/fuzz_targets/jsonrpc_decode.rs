//! The session bridge's decoding of one frame: never panics, and every
//! rejection it answers is a JSON-RPC error with a known code.
//! The check itself is in fuzz/checks, shared with the corpus replay in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/jsonrpc_decode.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
