#!/usr/bin/env bash
# Installs zen-shim and zend with `cargo install` (into ~/.cargo/bin, or wherever the extra
# arguments say: `scripts/install.sh --root /opt/zen`). On Linux with glibc the shim is linked
# statically; see scripts/static-shim.sh for why. Then register it with your client, e.g.
# `zend register claude-code`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/static-shim.sh
cargo install --locked --path shim "${zen_static_args[@]}" "$@"
cargo install --locked --path daemon "$@"
