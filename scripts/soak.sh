#!/usr/bin/env bash
# zen's load and soak run (BENCHMARKS.md, "Load and soak"): not part of the quick
# test run or of scripts/bench.sh. Builds zen-shim and zend in release exactly as
# scripts/bench.sh does, then drives real zen-shim sessions on one zend with its
# own temporary home and a loopback mock provider. Loopback only; bounded in time
# (a watchdog stops everything); Ctrl-C stops it cleanly. Writes
# bench-results/soak-latest.json and soak-latest.txt; exits non-zero when a
# target is missed (any error, RSS growth > 5 %, an fd not returned).
#
#   scripts/soak.sh                 load (256 sessions) then soak (32 sessions, 10 min): ~12 min
#   scripts/soak.sh --quick         a ~30 s smoke run (small counts; figures are not meaningful)
#   scripts/soak.sh --load-only     only the load: N sessions at once (--sessions, default 256),
#                                   --rounds R rounds of the mix each (default 4)
#   scripts/soak.sh --no-chat       the mix without chat: nothing written to the store (a diagnosis)
#   scripts/soak.sh --soak-only     only the soak: N sessions (--sessions, default 32) for
#                                   --minutes M (default 10), one call per --pace-ms P each (default 100)
#
# ZEN_BENCH_ENV_X=v gives every zen process X=v (e.g. ZEN_BENCH_ENV_MALLOC_ARENA_MAX=2).
# ZEN_BENCH_VERBOSE=1 shows the processes' stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zen-shim
cargo build --release --locked -p zend
exec cargo bench --locked -p zen-bench --bench soak -- "$@"
