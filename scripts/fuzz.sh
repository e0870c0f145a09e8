#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time, growing fuzz/corpus/<target>.
#
#   scripts/fuzz.sh                   every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh jsonrpc_decode
#   FUZZ_SANITIZER=address scripts/fuzz.sh     (slower; the default "none" still catches
#                                              panics, stack overflows and timeouts)
#   FUZZ_CMIN=1 scripts/fuzz.sh       minimise each corpus afterwards (before committing it)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Exits non-zero if any
# target crashed; the reproducer is in fuzz/artifacts/<target>/ (`cargo +nightly fuzz run
# <target> <file>` replays it).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(shim_framing shim_scan jsonrpc_decode config_yaml)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    # -rss_limit_mb: a 10 MB line parsed into serde_json values is fine; a leak is not.
    if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=1048576 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1; then
        failed+=("$target")
        continue
    fi
    if [ "${FUZZ_CMIN:-0}" = 1 ]; then
        cargo +nightly fuzz cmin --sanitizer "$sanitizer" "$target" "corpus/$target"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: no crashes in ${targets[*]}"
