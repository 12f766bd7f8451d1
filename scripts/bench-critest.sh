#!/usr/bin/env bash
# critest with containerd's runc shim driving the same runsc (the `runc-runsc` handler), the
# baseline column of the CRI conformance table. Not in CI: on containerd 2.1.9 that handler's
# StartContainer hangs past 30 s-5 min on critest's pods, so the run takes up to critest's
# 25-minute suite timeout. Records into the release results beside scripts/test.sh's runs:
#   scripts/bench-critest.sh [SET]        (default current) -> $WARDEN_RESULTS_DIR/SET/critest-runc-runsc.jsonl
# WARDEN_CRITEST_TIMEOUT bounds the suite (critest's --ginkgo.timeout, default 25m); specs it
# did not reach are recorded as failed.
# then `scripts/conformance-table.py .build/release-results --readme README.md`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
set_name=${1:-current}
ensure_packages python3-grpcio python3-protobuf gcc libc6-dev iproute2 containernetworking-plugins docker-registry skopeo
results=${WARDEN_RESULTS_DIR:-.build/release-results}
mkdir -p "$results/$set_name"
scripts/releases.sh "$set_name" --env > "$results/$set_name/versions.env"
set -a; . "$results/$set_name/versions.env"; set +a
swift build >/dev/null
scripts/build-test-image.sh >/dev/null
scripts/build-critest-images.sh >/dev/null
rm -f "$results/$set_name/critest-runc-runsc.jsonl"
WARDEN_BIN=$(swift build --show-bin-path) /usr/bin/python3 tests/critest/run_critest.py --handler runc-runsc \
  --results "$results/$set_name/critest-runc-runsc.jsonl" || true
/usr/bin/python3 scripts/conformance-table.py "$results"
