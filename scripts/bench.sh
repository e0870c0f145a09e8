#!/usr/bin/env bash
# zen's benchmark suite (see BENCHMARKS.md). Builds zen-shim and zend in release
# (thin LTO, from the workspace's release profile), each on its own exactly as
# scripts/install.sh builds them (the shim statically linked on Linux with glibc, and the
# floor server the same way, so that the two are compared like for like), then runs the
# suite: about a minute, loopback only. Prints a table; writes bench-results/latest.json
# and latest.txt.
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
source scripts/static-shim.sh
root=$PWD
out=$root/target/release
if [ ${#zen_static_args[@]} -gt 0 ]; then
  out=$root/target/$zen_host/release
fi
# Both the shim and the floor server are built as scripts/install.sh builds the shim: alone,
# statically linked where that works, with `quiet-deps` (their dependencies' tracing call sites
# compiled out), so that the two are compared like for like.
if [ ${#zen_static_args[@]} -gt 0 ] && ! cargo build --release --locked -p zen-shim --features quiet-deps "${zen_static_args[@]}"; then
  echo "bench.sh: the static link of zen-shim failed (no libc.a?); measuring the dynamic shim and floor" >&2
  zen_static_args=()
  out=$root/target/release
fi
if [ ${#zen_static_args[@]} -eq 0 ]; then
  cargo build --release --locked -p zen-shim --features quiet-deps
fi
cargo build --release --locked -p zend
bin=$root/target/bench-bin
mkdir -p "$bin"
cargo build --release --locked -p zen-floor --features quiet-deps "${zen_static_args[@]}"
# A copy: without a static link both builds of the floor land in target/release/.
cp "$out/floor_server" "$bin/floor_server"
# The floor as cargo builds it by default (dynamically linked, tracing compiled in), for a row
# of its own; the bench finds it in target/release/.
cargo build --release --locked -p zen-floor
# The shim starts zend from beside itself: put the two side by side (hard links, so that
# zend's pages are the ones cargo wrote, not a fresh copy's).
ln -f "$out/zen-shim" "$bin/zen-shim" 2>/dev/null || cp "$out/zen-shim" "$bin/zen-shim"
ln -f target/release/zend "$bin/zend" 2>/dev/null || cp target/release/zend "$bin/zend"
ZEN_BENCH_BIN_DIR=$bin ZEN_BENCH_FLOOR=$bin/floor_server \
  cargo bench --locked -p zen-bench --bench zen -- "$@"
