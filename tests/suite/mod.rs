//! One module per capability.

/// Spine: shim ↔ daemon, auto-start, single instance, status/stop, bad input.
mod foundation;
