#!/usr/bin/env bash
# Installs zen-shim and zend with `cargo install` (into ~/.cargo/bin, or wherever the extra
# arguments say: `scripts/install.sh --root /opt/zen`). On Linux with glibc the shim is linked
# statically; see scripts/static-shim.sh for why. Where the static C library is missing (e.g.
# Fedora without glibc-static) it says so and installs the dynamically linked shim instead,
# which works the same. Then register it with your client, e.g. `zend register claude-code`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/static-shim.sh
if [ ${#zen_static_args[@]} -gt 0 ]; then
  if ! cargo install --locked --path shim "${zen_static_args[@]}" "$@"; then
    echo "install.sh: the static link of zen-shim failed (is the static C library, libc.a," >&2
    echo "installed? Debian/Ubuntu: libc6-dev; Fedora: glibc-static); installing it dynamically linked" >&2
    cargo install --locked --path shim "$@"
  fi
else
  cargo install --locked --path shim "$@"
fi
cargo install --locked --path daemon "$@"
