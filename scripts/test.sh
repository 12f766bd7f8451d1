#!/usr/bin/env bash
# Warden's test command (README, .ci/run). On a fresh Debian 12 machine it installs what the
# tests need, builds, and runs:
#   1. the generated-code check (scripts/generate-protos.sh reproduces the committed code),
#   2. `swift test`: unit tests, and the interop tests against real peers: Go's ttrpc
#      (tests/fixtures/ttrpc-interop, built here offline in GOPATH mode from Debian's
#      golang-github-containerd-ttrpc-dev) and a private containerd 1.6.20,
#   3. the shim integration tests: containerd 1.6.20 + ctr running containers through Warden
#      with Debian's real runsc and with fake-runsc (image: scripts/build-test-image.sh),
#   4. the CRI tests (tests/cri, Python): containerd's CRI plugin with Warden as the `warden`
#      runtime handler, pods driven through CRI v1 (tools/cri), scripts/install.sh.
# WARDEN_INTEROP=1 makes a missing peer a failure rather than a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

. scripts/lib.sh
# iproute2 and containernetworking-plugins: the network-release tests (test-made namespaces,
# CNI bridge).
# python3-grpcio: the CRI client; gcc, libc6-dev: the static pause binary of the test image.
ensure_packages containerd runc runsc busybox-static bsdutils python3 protobuf-compiler libseccomp-dev python3-prometheus-client \
  iproute2 containernetworking-plugins python3-grpcio python3-protobuf gcc libc6-dev \
  golang-go golang-github-containerd-ttrpc-dev \
  golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev

echo "== test fixtures"
scripts/build-fixtures.sh
scripts/build-test-image.sh

if [ "${WARDEN_SKIP_PROTO_CHECK:-0}" != 1 ]; then
  echo "== generated code is reproducible"
  scripts/generate-protos.sh
  generated=(Sources/ContainerdAPI/Generated Sources/TTRPC/Generated tools/cri/runtime_v1_subset_pb2.py)
  if ! git diff --quiet -- "${generated[@]}" ||
     [ -n "$(git ls-files --others --exclude-standard "${generated[@]}")" ]; then
    git status --short -- "${generated[@]}"
    echo "scripts/generate-protos.sh does not reproduce the committed generated code" >&2
    exit 1
  fi
fi

echo "== build"
swift build --build-tests

export WARDEN_INTEROP=1 WARDEN_GO_TTRPC_FIXTURE="$root/tests/fixtures/bin/ttrpc-interop"
echo "== swift test (unit and interop)"
# The deadline tests bound how late a timeout may fire; the integration suite's sandboxes
# would load both cores under them, so it runs on its own afterwards.
# PidReuseTests recycles pids through ns_last_pid: run alongside, another test could find a
# pid it just reaped taken again (a false "still there"), so it runs on its own.
swift test --skip-build --skip ShimIntegrationTests --skip PidReuseTests --skip FuzzTests
swift test --skip-build --filter PidReuseTests
echo "== fuzzing the front door (seeded mutations in the suite, then libFuzzer for 60 s)"
# Both load the cores: on their own, after the timing-sensitive unit tests.
WARDEN_FUZZ_SECONDS=10 swift test --skip-build --filter FuzzTests
scripts/fuzz.sh 60
echo "== swift test (shim integration: containerd + ctr + Warden, real runsc and fake-runsc)"
# One suite at a time: each runs containerd and sandboxes, and bounds how long steps take.
swift test --skip-build --no-parallel --filter ShimIntegrationTests
echo "== CRI tests (containerd's CRI plugin + Warden handler; tools/cri client; install.sh)"
# Debian's python (python3-grpcio), not whatever python3 comes first on PATH.
WARDEN_BIN=$(swift build --show-bin-path) /usr/bin/python3 -m unittest discover -s tests/cri -v
