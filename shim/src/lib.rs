//! The shim's pure parts, kept apart from its I/O so they can be unit-tested
//! and fuzzed: cutting stdin into lines ([`framing`]), the structural scan for
//! a line's top-level `id` and `method` ([`scan`]), and the bookkeeping that
//! hides a daemon restart from the client ([`replay`]). `main.rs` (the binary)
//! and `connect.rs` do the I/O.

pub mod framing;
pub mod replay;
pub mod scan;
