//! The shim's structural scan: never panics and finds the top-level `id`
//! and `method` as a real parser does.
//! The check itself is in fuzz/checks, shared with the corpus replay in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/shim_scan.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
