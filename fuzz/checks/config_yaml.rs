//! Configuration loading: any bytes as the user's `server.yaml` give a
//! `ServerConfig` or an error naming the file, never a panic.
//! Shared by the fuzz target and its corpus replay in `cargo test`.

use std::path::Path;

use zend::config::{SERVER_YAML, ServerConfig, load_layered, parse_yaml};

/// Panics when loading `data` as `dir/server.yaml` panics or fails without naming the file.
pub fn check(data: &[u8], dir: &Path) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_yaml(text, Path::new("fuzz.yaml"));
    }
    std::fs::write(dir.join("server.yaml"), data).expect("write the user's file");
    match load_layered::<ServerConfig>("server.yaml", SERVER_YAML, dir) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("server.yaml"), "{e}"),
    }
}
