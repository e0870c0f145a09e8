# Sourced by scripts/install.sh and scripts/bench.sh: how zen-shim is built.
#
# On Linux with glibc the shim is linked statically (`-C target-feature=+crt-static`): every
# assistant session runs one, and a dynamically linked shim maps libc, libm, libgcc_s and the
# loader, ~0.85 MiB of its 3.4 MiB RSS, and spends ~0.4 ms of its start relocating them
# (BENCHMARKS.md, session 15). The shim calls nothing in glibc that needs NSS or dlopen
# (no user or host lookups), so the static build behaves exactly like the dynamic one.
#
# The flag goes through `--target <host>`: given that way it applies to the shim and its
# dependencies only, not to build scripts and proc-macros (which cannot be linked statically).
# The output then lands in target/<host>/release/. `--strip-all` because the profile's
# `strip = true` leaves a static-pie's symbol table in (3.59 MB instead of 2.72 MB; the symbols
# are never loaded, so only the file is bigger). Elsewhere (macOS, musl, BSD) it is empty.
zen_host=$(rustc -vV | sed -n 's/^host: //p')
zen_static_args=()
case "$zen_host" in
  *-linux-gnu*)
    zen_static_args=(--target "$zen_host"
      --config "target.$zen_host.rustflags = [\"-C\", \"target-feature=+crt-static\", \"-C\", \"link-arg=-Wl,--strip-all\"]")
    ;;
esac
