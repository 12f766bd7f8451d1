#!/usr/bin/env bash
# Warden's test command (README, .ci/run). On a fresh Debian 12 machine it installs what the
# tests need, fetches the release sets (scripts/releases.sh), builds, and runs:
#   1. the generated-code check (scripts/generate-protos.sh reproduces the committed code),
#   2. `swift test`: unit tests, and the interop tests against real peers: Go's ttrpc
#      (tests/fixtures/ttrpc-interop, built here offline in GOPATH mode from Debian's
#      golang-github-containerd-ttrpc-dev) and a private containerd of the `current` set,
#   3. fuzzing the front door (seeded mutations, then libFuzzer for 60 s), and the check that
#      the shipped build has no test-only code (scripts/check-shipped-build.sh),
#   4. for each release set (WARDEN_RELEASE_SETS, default "current lts bookworm next"; a set
#      whose containerd is not on the machine, as `next` without ../shared/tools, is
#      reported NOT RUN, in the table too, never as passed):
#      the shim integration tests (a private containerd + ctr running containers through
#      Warden with the set's real runsc and with fake-runsc) and the CRI tests (tests/cri:
#      containerd's CRI plugin with Warden as the `warden` runtime handler, pods driven through
#      CRI v1 by tools/cri, scripts/install.sh on that containerd's own `config default`),
#      and cri-tools' critest, the CRI validation suite (tests/critest/run_critest.py: the
#      `warden` handler, and `warden-shim` on containerd 2.x; stand-in images served offline;
#      every failure must have a reason that is not Warden's; leak audit after the suite),
#   5. a 2-minute chaos soak through CRI on the first set (scripts/soak.sh --check),
#   6. the release × capability table (scripts/release-table.py) and the critest conformance
#      table (scripts/conformance-table.py) from what 2–4 recorded in WARDEN_RESULTS_DIR
#      (default .build/release-results).
# A set's failure does not stop the other sets; the run fails at the end if anything failed.
# WARDEN_INTEROP=1 makes a missing peer a failure rather than a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

. scripts/lib.sh
# iproute2 and containernetworking-plugins: the network-release tests (test-made namespaces,
# CNI bridge).
# python3-grpcio: the CRI client; gcc, libc6-dev: the static pause binary of the test image.
# docker-registry, skopeo: critest's images served offline on the CRI node's loopback.
ensure_packages containerd runc runsc busybox-static bsdutils python3 protobuf-compiler libseccomp-dev python3-prometheus-client \
  iproute2 containernetworking-plugins python3-grpcio python3-protobuf gcc libc6-dev \
  golang-go golang-github-containerd-ttrpc-dev \
  golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev docker-registry skopeo

echo "== test fixtures"
scripts/build-fixtures.sh
scripts/build-test-image.sh
scripts/build-critest-images.sh

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
requested_sets=(${WARDEN_RELEASE_SETS:-current lts bookworm next})
results=${WARDEN_RESULTS_DIR:-$root/.build/release-results}
failed=()
not_run=()
sets=()
mkdir -p "$results"
for set in "${requested_sets[@]}"; do
  rm -rf "${results:?}/$set"
  mkdir -p "$results/$set"
  status=0
  scripts/releases.sh "$set" --env > "$results/$set/versions.env" 2> "$results/$set/releases.log" || status=$?
  cat "$results/$set/releases.log" >&2
  if [ "$status" = 3 ]; then
    # Not on this machine (releases.sh said why): every suite of the set is "not run".
    grep -h "NOT AVAILABLE" "$results/$set/releases.log" > "$results/$set/not-run"
    not_run+=("release set $set")
    continue
  elif [ "$status" != 0 ]; then
    echo "scripts/releases.sh $set failed (exit $status)" >&2
    exit 1
  fi
  sets+=("$set")
done
# with_set SET COMMAND…: COMMAND with the set's containerd and runsc (WARDEN_CONTAINERD_DIR,
# WARDEN_RUNSC) in its environment.
with_set() {
  local set=$1; shift
  ( set -a; . "$results/$set/versions.env"; set +a; "$@" )
}
# step NAME COMMAND…: runs it; a failure is recorded and the run goes on.
step() {
  local name=$1; shift
  local began=$SECONDS
  if "$@"; then
    echo "== $name: passed in $((SECONDS - began)) s"
  else
    echo "== $name: FAILED (exit $?) after $((SECONDS - began)) s"
    failed+=("$name")
  fi
}
primary=${sets[0]}
# critest_handlers SET: Warden's handlers critest runs with on that set (the Sandbox API's only
# on containerd 2.x).
critest_handlers() {
  case "$(with_set "$1" sh -c 'echo "$WARDEN_CONTAINERD_VERSION"')" in
    1.*) echo warden ;;
    *) echo warden warden-shim ;;
  esac
}
# critest_step SET HANDLER: critest on the set's private CRI node. With no critest binary
# (../shared/tools or CRITEST=) it says so loudly and records "not run"; never a pass.
critest_step() {
  local set=$1 handler=$2 began=$SECONDS status=0
  echo "== critest ($set, $handler): cri-tools' CRI validation suite (tests/critest/run_critest.py)"
  rm -f "$results/$set/critest-$handler.jsonl"
  with_set "$set" env WARDEN_BIN="$bin" /usr/bin/python3 tests/critest/run_critest.py --handler "$handler" \
    --results "$results/$set/critest-$handler.jsonl" || status=$?
  if [ "$status" = 3 ]; then
    echo "== critest ($set, $handler): NOT RUN (no critest binary: ../shared/tools/cri-tools-*/critest or CRITEST=)" >&2
    not_run+=("critest ($set, $handler)")
  elif [ "$status" = 0 ]; then
    echo "== critest ($set, $handler): passed in $((SECONDS - began)) s"
  else
    echo "== critest ($set, $handler): FAILED (exit $status) after $((SECONDS - began)) s"
    failed+=("critest ($set, $handler)")
  fi
}

echo "== swift test (unit and interop; containerd of the $primary set)"
# The deadline tests bound how late a timeout may fire; the integration suite's sandboxes
# would load both cores under them, so it runs on its own afterwards.
# PidReuseTests recycles pids through ns_last_pid: run alongside, another test could find a
# pid it just reaped taken again (a false "still there"), so it runs on its own.
step "unit ($primary)" with_set "$primary" swift test --skip-build --skip ShimIntegrationTests --skip PidReuseTests --skip FuzzTests \
  --xunit-output "$results/$primary/unit.xml"
step "pid reuse ($primary)" with_set "$primary" swift test --skip-build --filter PidReuseTests --xunit-output "$results/$primary/pidreuse.xml"
echo "== fuzzing the front door (seeded mutations in the suite, then libFuzzer for 60 s)"
# Both load the cores: on their own, after the timing-sensitive unit tests.
step "fuzz (seeded)" env WARDEN_FUZZ_SECONDS=10 swift test --skip-build --filter FuzzTests --xunit-output "$results/$primary/fuzz.xml"
step "fuzz (libFuzzer)" scripts/fuzz.sh 60

echo "== docs/architecture.md matches the package (scripts/architecture.py --check)"
step "architecture page" /usr/bin/python3 scripts/architecture.py --check

echo "== install.sh's program (tests/install: tools/install/warden_install.py, no node)"
step "install.sh unit" /usr/bin/python3 -m unittest discover -s tests/install

echo "== the shipped build carries no test-only code (scripts/check-shipped-build.sh)"
step "shipped build" scripts/check-shipped-build.sh

bin=$(swift build --show-bin-path)
for set in "${sets[@]}"; do
  echo "== release set $set: $(tr '\n' ' ' < "$results/$set/versions.env")"
  echo "== swift test (shim integration on $set: containerd + ctr + Warden, real runsc and fake-runsc)"
  # One suite at a time: each runs containerd and sandboxes, and bounds how long steps take.
  step "integration ($set)" with_set "$set" swift test --skip-build --no-parallel --filter ShimIntegrationTests \
    --xunit-output "$results/$set/integration.xml"
  echo "== CRI tests on $set (containerd's CRI plugin + Warden handler; tools/cri client; install.sh)"
  # Debian's python (python3-grpcio), not whatever python3 comes first on PATH.
  # On containerd 2.3+ the upgrade test starts from the `current` set's containerd (2.1).
  upgrade_from=""
  if [ -s "$results/current/versions.env" ] && [ ! -e "$results/current/not-run" ]; then
    upgrade_from=$(with_set current sh -c 'echo "$WARDEN_CONTAINERD_DIR"')
  fi
  step "CRI ($set)" with_set "$set" env WARDEN_BIN="$bin" WARDEN_RESULTS_FILE="$results/$set/cri.jsonl" \
    WARDEN_UPGRADE_FROM_CONTAINERD_DIR="$upgrade_from" \
    /usr/bin/python3 tests/cri/run_suite.py
  for handler in $(critest_handlers "$set"); do
    critest_step "$set" "$handler"
  done
  date -u +%Y-%m-%d > "$results/$set/finished"
done

echo "== chaos soak: 2 minutes on $primary (scripts/soak.sh --seconds 120 --check)"
step "soak ($primary)" env WARDEN_BIN="$bin" scripts/soak.sh --set "$primary" --seconds 120 --check --out "$results/$primary/soak"

echo "== release × capability table (scripts/release-table.py $results)"
/usr/bin/python3 scripts/release-table.py "$results"
echo "== critest conformance table (scripts/conformance-table.py $results)"
/usr/bin/python3 scripts/conformance-table.py "$results"
if [ ${#not_run[@]} -gt 0 ]; then
  echo "== NOT RUN: ${not_run[*]}" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== all passed: ${sets[*]}"
