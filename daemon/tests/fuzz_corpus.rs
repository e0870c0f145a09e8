//! zend's fuzz targets replayed over their kept corpora (fuzz/corpus) on
//! stable Rust, so an input that once crashed them stays fixed.
// The checks are the fuzz targets' bodies: a failed expectation is a found bug.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../../fuzz/checks/config_yaml.rs"]
mod config_yaml;
#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../../fuzz/checks/jsonrpc_decode.rs"]
mod jsonrpc_decode;

use corpus::replay;

#[test]
fn jsonrpc_decode_corpus_replays() {
    replay("jsonrpc_decode", jsonrpc_decode::check);
}

#[test]
fn config_yaml_corpus_replays() {
    let dir = tempfile::tempdir().expect("a temporary config dir");
    let path = dir.path().to_path_buf();
    replay("config_yaml", move |data| config_yaml::check(data, &path));
}
