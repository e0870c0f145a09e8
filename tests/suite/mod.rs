//! One module per capability.

/// Spine: shim ↔ daemon, auto-start, single instance, status/stop, bad input.
mod foundation;

/// The tool engine, conversational tools, prompts and plugins.
mod tools;

/// Crash and restart recovery, version skew, shutdown, access, hostile input.
mod reliability;
