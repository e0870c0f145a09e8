//! The contract between `zen-shim` and `zend`, and nothing else.
//!
//! - [`v1`]: the `zen.v1` gRPC service generated from `zen.proto` (messages,
//!   client behind the `client` feature, server behind `server`).
//! - [`paths`]: where the daemon's socket lives. Both binaries must agree on it
//!   without talking, and the shim may not pull in the daemon's dependencies, so
//!   the rule lives here with the wire types.
//! - [`meta`]: the request-metadata keys a shim sends when it opens a session.
//! - [`peer`]: the peer-credential check both ends make on the socket.
//! - [`client`] (feature `client`): connect to zend or start it, and the gRPC
//!   client over that connection, for zen-shim and the `zend` CLI alike.

#[cfg(feature = "client")]
pub mod client;
pub mod paths;
pub mod peer;

/// The largest JSON-RPC message either end takes: a line on the shim's stdin, a
/// `Session` frame, an HTTP request body. Larger ones get a -32600 answer and the
/// session goes on; nobody holds more than this for a peer's one message.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The largest gRPC message zend decodes: a frame somewhat over
/// [`MAX_MESSAGE_BYTES`] still arrives and gets its -32600 answer (a client
/// other than the shim, which never sends one); beyond this the stream ends.
pub const MAX_FRAME_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

/// Generated from `zen.proto`.
#[allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/zen.v1.rs"));
}

/// Request-metadata keys on `Zend.Session` (see `zen.proto`).
pub mod meta {
    /// The shim's version.
    pub const SHIM_VERSION: &str = "x-zen-shim-version";
    /// The shim's process id.
    pub const SHIM_PID: &str = "x-zen-shim-pid";
    /// The shim's parent process id: the MCP client.
    pub const CLIENT_PID: &str = "x-zen-client-pid";
    /// The shim's working directory as raw bytes (binary metadata).
    pub const CWD_BIN: &str = "x-zen-cwd-bin";
    /// Names (never values) of the provider key variables set in the shim's
    /// environment, comma-separated; only sent when there are some.
    pub const CLIENT_KEYS: &str = "x-zen-client-keys";
    /// Response metadata on `Session`: those of [`CLIENT_KEYS`] zend does not
    /// have, comma-separated, so the shim can tell the user once.
    pub const KEYS_MISSING: &str = "x-zen-keys-missing";

    /// Whether an environment variable holds a provider key, by its name
    /// (`OPENAI_API_KEY`, `GEMINI_API_KEY`, `AZURE_OPENAI_API_KEY`, ...): the
    /// names [`CLIENT_KEYS`] carries.
    pub fn is_key_variable(name: &str) -> bool {
        name.len() > "_API_KEY".len()
            && name.ends_with("_API_KEY")
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }

    /// Trailer metadata on the error status that ends a `Session`: why zend
    /// ended it, so the shim knows whether to reconnect. A stream that breaks
    /// without it (zend crashed or was killed) is reconnected.
    pub const END: &str = "x-zen-end";

    /// Values of [`END`].
    pub mod end {
        /// Stopped on purpose (`zend stop`, a signal, the idle timer): do not start it again.
        pub const STOPPED: &str = "stopped";
        /// zend is restarting (to match a newer shim): reconnect and carry on.
        pub const RESTART: &str = "restart";
        /// The session was refused (it did not start with `initialize`): give up.
        pub const REFUSED: &str = "refused";
    }
}

/// The version both binaries are built at; the shim sends it, the daemon compares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
