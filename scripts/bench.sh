#!/usr/bin/env bash
# zen's benchmark suite (see BENCHMARKS.md). Builds zen-shim, zend and the floor server in
# release, each on its own as `cargo install` builds it, then runs the suite: a few minutes,
# loopback only. Prints a table; writes bench-results/latest.json and latest.txt.
#
#   scripts/bench.sh              the full run
#   scripts/bench.sh --quick      a smoke run (small counts; figures are not meaningful)
#   scripts/bench.sh --callgrind  also count instructions per call with valgrind
#
# ZEN_BENCH_NO_PEER=1 skips the consult-llm-mcp peer rows (fetched once with npm into
# target/bench-peer/). ZEN_BENCH_VERBOSE=1 shows the servers' stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zen-shim
cargo build --release --locked -p zend
cargo build --release --locked -p zen-floor
cargo bench --locked -p zen-bench --bench zen -- "$@"
