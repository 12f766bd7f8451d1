#!/usr/bin/env bash
# podsandbox against shim (containerd 2.x's Sandbox API) on one node: RunPodSandbox,
# StopPodSandbox, RemovePodSandbox latency and per-pod memory, Warden as shipped driving the
# real runsc through both handlers of one private containerd (tests/cri/bench_sandboxer.py).
# Prints a markdown section (scripts/bench.sh puts it into docs/benchmarks.md).
#   scripts/bench-sandboxer.sh [--rounds N] [--alive N]      (defaults 10 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages python3-grpcio python3-protobuf gcc libc6-dev iproute2 containernetworking-plugins
eval "$(scripts/releases.sh current --env)"
export WARDEN_CONTAINERD_DIR WARDEN_RUNSC WARDEN_CONTAINERD_VERSION WARDEN_RUNSC_VERSION
bin=$(WARDEN_EXTRA_PRODUCTS=fake-runsc scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null
table=$(WARDEN_BIN=$bin /usr/bin/python3 tests/cri/bench_sandboxer.py "$@")
echo "## podsandbox against shim: containerd 2.x's Sandbox API"
echo
echo "Written by \`scripts/bench-sandboxer.sh\` (via \`scripts/bench.sh sandboxer\`) on $(date -u +%Y-%m-%d):"
echo "containerd $WARDEN_CONTAINERD_VERSION with its CRI plugin, runsc $WARDEN_RUNSC_VERSION (\`network=none\`),"
echo "Warden as shipped. One node, two handlers of the same Warden: \`warden\` (\`podsandbox\`: CRI runs"
echo "the pause image warden.test/pause:1 as a task of Warden's) and \`warden-shim\` (\`sandboxer = \"shim\"\`:"
echo "CRI hands the pod over through the Sandbox API; the sandbox runs Warden's pause rootfs). Rounds"
echo "alternate the two; each pod has one container; each call is timed alone (the container's"
echo "create and start are not counted). Memory: pods of each mode alive at once, the PSS of each"
echo "pod's host processes."
echo
echo "$table"
