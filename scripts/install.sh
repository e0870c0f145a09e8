#!/usr/bin/env bash
# Installs zen-shim and zend with `cargo install` (into ~/.cargo/bin, or wherever the extra
# arguments say: `scripts/install.sh --root /opt/zen`). Then register zen with your client,
# e.g. `zend register claude-code`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo install --locked --path shim "$@"
cargo install --locked --path daemon "$@"
