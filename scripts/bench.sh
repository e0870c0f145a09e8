#!/usr/bin/env bash
# zen's benchmark suite (see BENCHMARKS.md). Builds zen-shim and zend in release
# (thin LTO, from the workspace's release profile), each on its own exactly as
# `cargo install` builds them, then runs the suite: about a minute, loopback
# only. Prints a table; writes bench-results/latest.json and latest.txt.
#
#   scripts/bench.sh            the full run
#   scripts/bench.sh --quick    a smoke run (small counts; figures are not meaningful)
#   scripts/bench.sh --callgrind  also count instructions per call with valgrind (+~1 min;
#                               unlike times, these do not move with the machine's load)
#
# ZEN_BENCH_NO_PEER=1 skips the consult-llm-mcp peer row (fetched once with npm
# into target/bench-peer/). ZEN_BENCH_VERBOSE=1 shows the servers' stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zen-shim
cargo build --release --locked -p zend
cargo bench --locked -p zen-bench --bench zen -- "$@"
