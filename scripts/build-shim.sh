#!/usr/bin/env bash
# Builds the shim as it ships: release, linked with -static-executable (Swift runtime and
# glibc inside, no dynamic loader work at exec, no relocated shared-library pages), which
# measured best for a process that runs once per pod (docs/benchmarks.md: idle RSS and PSS
# per shim). Prints the directory holding containerd-shim-warden-v2 (and `warden`), and
# pause-rootfs/ (tools/pause/pause.c, static: the sandbox of Sandbox API pods).
# install.sh, the node image, the demo and the benchmarks use this build.
#   scripts/build-shim.sh [extra swift build arguments]
#   WARDEN_EXTRA_PRODUCTS="fake-runsc"   also build these the same way (the benchmarks' fault runs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages libseccomp-dev gcc libc6-dev  # the shim's seccomp filter, linked statically; the static pause
scratch=.build-shim
# Output goes to $scratch/build.log; shown only on failure. (glibc's link-time warnings that
# getpwnam & co. need its NSS modules at runtime are expected: the shim never looks up users.)
mkdir -p "$scratch"
for product in containerd-shim-warden-v2 warden ${WARDEN_EXTRA_PRODUCTS:-}; do
  if ! swift build -c release --product "$product" --scratch-path "$scratch" -Xswiftc -static-executable "$@" \
      > "$scratch/build.log" 2>&1; then
    cat "$scratch/build.log" >&2
    echo "build-shim.sh: building $product failed" >&2
    exit 1
  fi
done
# The pause rootfs: one static binary and the mount points runsc mounts over (read-only root).
mkdir -p "$scratch/release/pause-rootfs/proc" "$scratch/release/pause-rootfs/dev" "$scratch/release/pause-rootfs/sys"
gcc -static -Os -Wall -Wextra -o "$scratch/release/pause-rootfs/pause.tmp" tools/pause/pause.c
strip "$scratch/release/pause-rootfs/pause.tmp"
mv "$scratch/release/pause-rootfs/pause.tmp" "$scratch/release/pause-rootfs/pause"
echo "$(pwd)/$scratch/release"
