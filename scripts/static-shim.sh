# Sourced by scripts/install.sh and scripts/bench.sh: how zen-shim is built.
#
# On Linux with glibc the shim is linked statically (`-C target-feature=+crt-static`): every
# assistant session runs one, and a dynamically linked shim maps libc, libm, libgcc_s and the
# loader, ~0.85 MiB of its 3.4 MiB RSS, and spends ~0.15–0.4 ms of its start loading them
# (BENCHMARKS.md, session 15). The shim calls nothing in glibc that needs NSS or dlopen
# (no user or host lookups), so the static build behaves exactly like the dynamic one.
#
# The flag goes through `--target <host>`: given that way it applies to the shim and its
# dependencies only, not to build scripts and proc-macros (which cannot be linked statically).
# The output then lands in target/<host>/release/. `--strip-all` because the profile's
# `strip = true` leaves a static-pie's symbol table in (3.59 MB instead of 2.72 MB; the symbols
# are never loaded, so only the file is bigger). Elsewhere (macOS, musl, BSD) it is empty.
#
# Where the toolchain can, the relative relocations are also packed (`-z pack-relative-relocs`,
# DT_RELR): 7,400 of them took 178 KB of table, read at every start; packed, 2 KB, and the shim
# maps ~0.2 MiB less. It needs GNU ld >= 2.38 and glibc >= 2.36, whose static start-up code
# applies them; a binutils new enough with a glibc too old (Ubuntu 22.04) would build a shim that
# crashes at start, so a tiny static-pie C program is linked the same way and run first.
zen_host=$(rustc -vV | sed -n 's/^host: //p')
zen_static_args=()
# The same flags as rustc arguments, for `cargo rustc` (bench.sh's floor server).
zen_static_rustc=()
case "$zen_host" in
  *-linux-gnu*)
    zen_static_rustc=(-C target-feature=+crt-static -C link-arg=-Wl,--strip-all)
    zen_probe=$(mktemp -d)
    # A pointer in static data needs a relative relocation: unapplied, it points nowhere.
    if printf 'static const char *s = "ok";\nint main(void) { return s[0] != 0x6f; }\n' >"$zen_probe/p.c" &&
      cc -static-pie -Wl,-z,pack-relative-relocs -o "$zen_probe/p" "$zen_probe/p.c" 2>/dev/null &&
      "$zen_probe/p"; then
      zen_static_rustc+=(-C link-arg=-Wl,-z,pack-relative-relocs)
    fi
    rm -rf "$zen_probe"
    # The same flags as a TOML array for `--config`.
    zen_flags=$(printf '"%s", ' "${zen_static_rustc[@]}")
    zen_flags=${zen_flags%, }
    zen_static_args=(--target "$zen_host" --config "target.$zen_host.rustflags = [$zen_flags]")
    ;;
esac
