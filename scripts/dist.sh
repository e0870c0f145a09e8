#!/usr/bin/env bash
# Builds zen's release packages for one target: the archive (zen-shim, zend, README, licences)
# with its SHA-256 file, and on request the PyPI wheel and the npm packages, all under
# target/dist/. The release workflow (.github/workflows/release.yml) runs it once per target.
#
#   scripts/dist.sh [--target TRIPLE] [--wheel] [--npm] [--zig]
#
# --target  a Rust target triple (default: the host's). Cross targets need their rustup target
#           and a linker: --zig (cargo-zigbuild) provides one for every Linux target.
# --zig     build through cargo-zigbuild against glibc 2.17 on Linux, so the binaries run on any
#           glibc of the last decade (manylinux2014), whatever glibc the build machine has.
# --wheel   also the wheel (maturin, bindings = "bin"): zend built by maturin, zen-shim put in the
#           wheel's scripts beside it; `pip install` puts both on PATH.
# --npm     also the npm packages: `zen-mcp` (a launcher, no binaries) and the platform package
#           `@zen-mcp/<os>-<cpu>` holding both binaries; npm installs only the one that fits.
#
# Each binary is built the one way `cargo install` builds it (release profile); nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target="" wheel=0 npm=0 zig=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --wheel) wheel=1; shift ;;
    --npm) npm=1; shift ;;
    --zig) zig=1; shift ;;
    *) echo "dist.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
host=$(rustc -vV | sed -n 's/^host: //p')
target=${target:-$host}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
out="$root/target/dist"
mkdir -p "$out"

# The build command: plain cargo, or cargo-zigbuild pinned to glibc 2.17 for Linux gnu targets.
build_target="$target"
cargo_build=(cargo build --release --locked)
if [ "$zig" = 1 ]; then
  command -v cargo-zigbuild >/dev/null || { echo "dist.sh: --zig needs cargo-zigbuild (cargo install cargo-zigbuild; pip install ziglang)" >&2; exit 1; }
  cargo_build=(cargo zigbuild --release --locked)
  case "$target" in *-linux-gnu) build_target="$target.2.17" ;; esac
fi
bin_dir="$root/target/$target/release"

echo "dist.sh: building zen-shim and zend $version for $target" >&2
"${cargo_build[@]}" --target "$build_target" -p zen-shim -p zend

# The archive: zen-<version>-<target>.tar.gz holding one directory.
name="zen-$version-$target"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
cp "$bin_dir/zen-shim" "$bin_dir/zend" "$stage/$name/"
cp README.md LICENSE-MIT LICENSE-APACHE "$stage/$name/"
cp daemon/data/litellm/SOURCE.md "$stage/$name/THIRD-PARTY-litellm.md"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"

# The platform names the wheel and npm use for this target.
case "$target" in
  x86_64-unknown-linux-*) npm_os=linux npm_cpu=x64 ;;
  aarch64-unknown-linux-*) npm_os=linux npm_cpu=arm64 ;;
  x86_64-apple-darwin) npm_os=darwin npm_cpu=x64 ;;
  aarch64-apple-darwin) npm_os=darwin npm_cpu=arm64 ;;
  *) npm_os="" npm_cpu="" ;;
esac

if [ "$wheel" = 1 ]; then
  command -v maturin >/dev/null || { echo "dist.sh: --wheel needs maturin (pip install maturin)" >&2; exit 1; }
  # maturin builds zend (the crate named in packaging/pypi/pyproject.toml); the shim, already
  # built above, rides in the wheel's data scripts, which pip installs beside zend.
  data="$root/packaging/pypi/zen_mcp.data/scripts"
  rm -rf "$root/packaging/pypi/zen_mcp.data"
  mkdir -p "$data"
  cp "$bin_dir/zen-shim" "$data/zen-shim"
  cp README.md "$root/packaging/pypi/README.md"
  maturin_args=(build --release --locked --target "$target" --out "$out")
  if [ "$zig" = 1 ]; then maturin_args+=(--zig --compatibility manylinux2014); fi
  (cd packaging/pypi && maturin "${maturin_args[@]}")
  rm -rf "$root/packaging/pypi/zen_mcp.data" "$root/packaging/pypi/README.md"
fi

if [ "$npm" = 1 ]; then
  [ -n "$npm_os" ] || { echo "dist.sh: no npm platform package for $target" >&2; exit 1; }
  command -v npm >/dev/null || { echo "dist.sh: --npm needs npm" >&2; exit 1; }
  platform="$npm_os-$npm_cpu"
  pkgs="$out/npm"
  rm -rf "$pkgs/zen-mcp" "$pkgs/$platform"
  mkdir -p "$pkgs"
  # The main package: the launcher and its install script, versioned like the binaries.
  cp -r packaging/npm/zen-mcp "$pkgs/zen-mcp"
  cp README.md LICENSE-MIT LICENSE-APACHE "$pkgs/zen-mcp/"
  sed -i.bak "s/0\.0\.0-dev/$version/g" "$pkgs/zen-mcp/package.json" && rm "$pkgs/zen-mcp/package.json.bak"
  # The platform package: both binaries, for npm's os/cpu selection.
  mkdir -p "$pkgs/$platform/bin"
  cp "$bin_dir/zen-shim" "$bin_dir/zend" "$pkgs/$platform/bin/"
  cp LICENSE-MIT LICENSE-APACHE "$pkgs/$platform/"
  libc_line=""
  [ "$npm_os" = linux ] && libc_line='"libc": ["glibc"],'
  cat > "$pkgs/$platform/package.json" <<JSON
{
  "name": "@zen-mcp/$platform",
  "version": "$version",
  "description": "zen's native binaries (zen-shim and zend) for $npm_os $npm_cpu; installed by the zen-mcp package",
  "license": "MIT OR Apache-2.0",
  "repository": {"type": "git", "url": "https://github.com/zen-mcp/zen"},
  "os": ["$npm_os"],
  "cpu": ["$npm_cpu"],
  $libc_line
  "files": ["bin/", "LICENSE-MIT", "LICENSE-APACHE"],
  "preferUnplugged": true
}
JSON
  (cd "$pkgs" && npm pack --silent "./zen-mcp" "./$platform" >/dev/null)
  ls "$pkgs"/*.tgz
fi
