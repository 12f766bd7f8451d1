#!/usr/bin/env bash
# Chaos soak through CRI (tests/cri/soak.py): pods of 1-3 containers created and removed at a
# set concurrency for a set time, each with a random fault (none, SIGSTOPped sandbox, hung
# runsc kill, hung runsc delete, shim SIGKILL, containerd restart during the stop, pinned
# netns), on a private node of a release set (default: current, the primary one).
#
#   scripts/soak.sh                          the benchmark: 15 min, concurrency 4, at most 400
#                                            pods, Warden as shipped; figures and plot in
#                                            .build/soak (docs/benchmarks.md, "Chaos soak")
#   scripts/soak.sh --seconds 120 --check    what scripts/test.sh runs: fails unless the
#                                            invariants hold (tests/cri/soak.py's header)
#
# Options: --seconds N, --concurrency N, --pods N, --seed N, --faults a,b,... --out DIR, --check,
# --set current|lts|bookworm. WARDEN_BIN: a build dir holding the shim and fake-runsc
# (default: scripts/build-shim.sh's, the shipped build, with fake-runsc beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
release_set=current
out=.build/soak
arguments=()
while [ $# -gt 0 ]; do
  case "$1" in
    --set) release_set=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seconds|--concurrency|--pods|--seed|--faults) arguments+=("$1" "$2"); shift 2 ;;
    --check) arguments+=("$1"); shift ;;
    *) echo "soak.sh: unknown option '$1' (see the header of scripts/soak.sh)" >&2; exit 2 ;;
  esac
done
ensure_packages python3-grpcio python3-protobuf python3-matplotlib iproute2 containernetworking-plugins util-linux
eval "$(scripts/releases.sh "$release_set" --env)"
export WARDEN_CONTAINERD_DIR WARDEN_RUNSC WARDEN_CONTAINERD_VERSION WARDEN_RUNSC_VERSION
if [ -z "${WARDEN_BIN:-}" ]; then
  WARDEN_BIN=$(WARDEN_EXTRA_PRODUCTS=fake-runsc scripts/build-shim.sh)
fi
export WARDEN_BIN
scripts/build-test-image.sh >/dev/null
exec /usr/bin/python3 tests/cri/soak.py --out "$out" "${arguments[@]}"
