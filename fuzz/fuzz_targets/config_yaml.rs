//! Configuration loading: any bytes as the user's `server.yaml` give a
//! `ServerConfig` or an error naming the file, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zend::config::{SERVER_YAML, ServerConfig, load_layered, parse_yaml};

fn config_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zen-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary config dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_yaml(text, std::path::Path::new("fuzz.yaml"));
    }
    let dir = config_dir();
    std::fs::write(dir.join("server.yaml"), data).expect("write the user's file");
    match load_layered::<ServerConfig>("server.yaml", SERVER_YAML, dir) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("server.yaml"), "{e}"),
    }
});
