#!/usr/bin/env bash
# The shipped shim (scripts/build-shim.sh) carries no test-only code: the seccomp probe
# service and the delay hooks are compiled in with WARDEN_TEST_HOOKS, which only debug builds
# define (Package.swift). Checked by their marker strings, which the debug build must hold
# (so that a renamed marker fails this check rather than passing it for the wrong reason).
#   scripts/check-shipped-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
markers=(warden.test.v1.SeccompProbe WARDEN_SECCOMP_PROBE delay-ladder-tail delay-shutdown)
debug=$(swift build --show-bin-path)/containerd-shim-warden-v2
shipped=$(scripts/build-shim.sh)/containerd-shim-warden-v2
status=0
for marker in "${markers[@]}"; do
  if ! grep -q -a -F "$marker" "$debug"; then
    echo "check-shipped-build: the debug build lacks \"$marker\": update the markers" >&2
    status=1
  fi
  if grep -q -a -F "$marker" "$shipped"; then
    echo "check-shipped-build: the shipped build contains test-only \"$marker\"" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "check-shipped-build: $shipped has none of: ${markers[*]}"
exit $status
