#!/usr/bin/env bash
# Fuzzes the shim's front door (Tests/Tools/FrontDoorFuzz: ttrpc frame decoder, request
# envelope, every Task method's request decoder) under libFuzzer, for a time budget.
#   scripts/fuzz.sh [SECONDS]        default 60 (what scripts/test.sh runs in CI)
#   WARDEN_FUZZ_MERGE=1 scripts/fuzz.sh 600
#                                    longer run, then merge what it found into tests/fuzz/corpus
# Starts from the committed corpus (tests/fuzz/corpus); new inputs go to a scratch dir.
# Limits: an input taking over 5 s is a hang, over 1 GiB RSS a memory failure; either, or any
# crash, fails the run and leaves the input in .build-fuzz/findings.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scratch=.build-fuzz
mkdir -p "$scratch"
if ! WARDEN_FUZZ=1 swift build -c release --product warden-fuzz --scratch-path "$scratch" --sanitize=fuzzer \
    > "$scratch/build.log" 2>&1; then
  cat "$scratch/build.log" >&2
  echo "fuzz.sh: building warden-fuzz with -sanitize=fuzzer failed" >&2
  exit 1
fi
work=$(mktemp -d "$scratch/corpus.XXXXXX")
mkdir -p "$scratch/findings"
trap 'rm -rf "$work"' EXIT
set +e
"$scratch/release/warden-fuzz" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$scratch/findings/" "$work" tests/fuzz/corpus > "$scratch/fuzz.log" 2>&1
status=$?
set -e
# One summary line: executions, corpus size, peak RSS.
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/fuzz.log" | grep -o '[0-9]*$' || echo "?")
rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$scratch/fuzz.log" | grep -o '[0-9]*$' || echo "?")
if [ "$status" -ne 0 ]; then
  tail -40 "$scratch/fuzz.log" >&2
  echo "fuzz.sh: libFuzzer found a crash, hang or memory failure (exit $status); input in $scratch/findings" >&2
  exit 1
fi
echo "fuzz.sh: ${seconds}s, $execs executions, 0 crashes, 0 hangs, peak RSS ${rss} MB, $(ls "$work" | wc -l) new inputs"
if [ "${WARDEN_FUZZ_MERGE:-0}" = 1 ]; then
  "$scratch/release/warden-fuzz" -merge=1 tests/fuzz/corpus "$work" > "$scratch/merge.log" 2>&1
  echo "fuzz.sh: tests/fuzz/corpus now holds $(ls tests/fuzz/corpus | wc -l) inputs"
fi
