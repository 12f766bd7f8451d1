#!/usr/bin/env bash
# The sandbox's control channel against runsc's CLI (issue 32): runsc processes over a pod's
# life, what idle pods of two containers keep on the host besides their sandbox, and SIGKILL
# of a container to its /tasks/exit, Warden as shipped driving the real runsc 2024 with
# `control_channel = "auto"` and `"off"` on one private containerd through CRI
# (tests/cri/bench_channel.py). Prints a markdown section (scripts/bench.sh channel puts it
# into docs/benchmarks.md).
#   scripts/bench-channel.sh [--alive N] [--kills N]      (defaults 10 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages python3-grpcio python3-protobuf gcc libc6-dev iproute2 containernetworking-plugins
eval "$(scripts/releases.sh current --env)"
export WARDEN_CONTAINERD_DIR WARDEN_RUNSC WARDEN_CONTAINERD_VERSION WARDEN_RUNSC_VERSION
bin=$(WARDEN_EXTRA_PRODUCTS=fake-runsc scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null
table=$(WARDEN_BIN=$bin /usr/bin/python3 tests/cri/bench_channel.py "$@")
echo "## The sandbox's control channel against runsc's CLI"
echo
echo "Written by \`scripts/bench-channel.sh\` (via \`scripts/bench.sh channel\`) on $(date -u +%Y-%m-%d):"
echo "containerd $WARDEN_CONTAINERD_VERSION with its CRI plugin, runsc $WARDEN_RUNSC_VERSION (\`network=none\`),"
echo "Warden as shipped, $(nproc) cores. One node, one \`warden\` handler whose config alternates"
echo "\`control_channel = \"auto\"\` (wait, kill, ps and stats over the sandbox's control server) and"
echo "\`\"off\"\` (runsc's CLI for every call) between pods. Every pod has two containers. runsc is"
echo "wrapped to log each process a shim starts. containerd's runc shim has no column: under CRI on"
echo "this node it cannot start a container in a runsc pod nor stop the pod sandbox alone (both"
echo "hang past CRI's 60 s deadline); the section above sets it beside Warden through ctr."
echo
echo "$table"
