//! Configuration loading: any bytes as the user's `server.yaml` give a
//! `ServerConfig` or an error naming the file, never a panic.
//! The check itself is in fuzz/checks, shared with the corpus replay in `cargo test`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../checks/config_yaml.rs"]
mod check;

fn config_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zen-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary config dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| check::check(data, config_dir()));
