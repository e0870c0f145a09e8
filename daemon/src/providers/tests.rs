//! Tests of the providers layer against a loopback mock HTTP server.
