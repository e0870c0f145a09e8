//! The shim's line framing: however stdin is cut into reads, the frames are
//! the lines of the whole input, endings stripped, empties dropped.
//! The check itself is in fuzz/checks, shared with the corpus replay in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/shim_framing.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
