//! The shim's pure parts, kept apart from its I/O so they can be unit-tested
//! and fuzzed: cutting stdin into lines ([`framing`]), the structural scan for
//! a line's top-level `id` and `method` ([`scan`]), and the bookkeeping that
//! hides a daemon restart from the client ([`replay`]), and the environment
//! a zend it starts gets ([`env`]). `main.rs` (the binary) and `connect.rs` do
//! the I/O.

pub mod env;
pub mod framing;
pub mod replay;
pub mod scan;
