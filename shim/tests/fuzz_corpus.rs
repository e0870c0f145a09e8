//! The shim's fuzz targets replayed over their kept corpora (fuzz/corpus) on
//! stable Rust, so an input that once crashed them stays fixed.
// The checks are the fuzz targets' bodies: a failed expectation is a found bug.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../../fuzz/checks/shim_framing.rs"]
mod shim_framing;
#[path = "../../fuzz/checks/shim_scan.rs"]
mod shim_scan;

use corpus::replay;

#[test]
fn shim_framing_corpus_replays() {
    replay("shim_framing", shim_framing::check);
}

#[test]
fn shim_scan_corpus_replays() {
    replay("shim_scan", shim_scan::check);
}
