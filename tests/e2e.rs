//! End-to-end tests: the real `zend` and `zen-shim` binaries, driven the way an
//! MCP client drives them (newline-delimited JSON-RPC over the shim's stdio,
//! with an environment of only HOME, PATH and ZEN_HOME). Every test gets its own
//! ZEN_HOME and stops its daemon; see `support` for the harness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)] // Harness helpers are shared by suites that each use a part.
mod support;

mod suite;
