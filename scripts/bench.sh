#!/usr/bin/env bash
# Warden benchmarks; writes docs/benchmarks.md.
#
# Section 1 (this step): footprint of an idle ttrpc server process (warden-ttrpc-echo, the
# TTRPC target alone) in three link modes, one process and ten side by side (PSS is what
# ten pods' shims cost the node), idle and after the Go interop client's workload
# (64 concurrent calls, 1 MiB payloads).
# Section 2: Warden beside containerd-shim-runc-v2 driving the same runsc
# (scripts/bench-shims.sh), on the `current` release set and on `bookworm`: `ctr run --rm`
# latency and where its time goes step by step, runsc create/start under each shim, shim
# RSS / PSS / threads with 1, 10, 50 and 100 pods and a pod of 10 containers, kill -> exit
# event latency, each with the ratio Warden / runc shim, and a plot per set
# (docs/benchmarks-shims-SET.png).
#
# Section 3: the fault matrix (scripts/bench-faults.sh): each fault, Warden beside the runc
# shim on the same runsc — how kill and delete end, time to exit, what is left behind.
#
# Section 4: through Kubernetes' CRI (scripts/bench-cri.sh): a wedged pod's StopPodSandbox
# with Warden and with the runc shim, and 20-pod loops (stop times, memory).
#
# Section 5: the chaos soak through CRI (scripts/bench-soak.sh: scripts/soak.sh, 15 minutes).
#
# Section 6: podsandbox against shim on containerd 2.x (scripts/bench-sandboxer.sh): Run/Stop/
# RemovePodSandbox latency and per-pod memory of the two ways CRI can hand Warden a pod.
#
# Section 7: the sandbox's control channel against runsc's CLI (scripts/bench-channel.sh):
# runsc processes over a pod's life, what idle pods keep besides their sandbox, kill -> exit.
#
# `scripts/bench.sh shims`, `faults`, `cri`, `soak`, `sandboxer` or `channel` refreshes that section only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=docs/benchmarks.md

# Sections 2 and 3 can be refreshed alone; the others are kept as written.
section() {  # the lines of $out from the header starting with "## $1" to the next "## "
  awk -v h="## $1" 'index($0, "## ") == 1 {p = index($0, h) == 1} p' "$out"
}
case "${1:-all}" in
  shims|faults|cri|soak|sandboxer|channel)
    first=$(awk '/^## Warden beside/ {exit} {print}' "$out")
    if [ "$1" = shims ]; then shims=$(scripts/bench-shims.sh); else shims=$(section "Warden beside"); fi
    if [ "$1" = faults ]; then faults=$(scripts/bench-faults.sh); else faults=$(section "Fault matrix"); fi
    if [ "$1" = cri ]; then cri=$(scripts/bench-cri.sh); else cri=$(section "Through CRI"); fi
    if [ "$1" = soak ]; then soak=$(scripts/bench-soak.sh); else soak=$(section "Chaos soak"); fi
    if [ "$1" = sandboxer ]; then sandboxer=$(scripts/bench-sandboxer.sh); else sandboxer=$(section "podsandbox against shim"); fi
    if [ "$1" = channel ]; then channel=$(scripts/bench-channel.sh); else channel=$(section "The sandbox's control channel"); fi
    printf '%s\n%s\n\n%s\n\n%s\n\n%s\n\n%s\n\n%s\n' "$first" "$shims" "$faults" "$cri" "$soak" "$sandboxer" "$channel" > "$out"
    cat "$out"
    exit 0
    ;;
esac

command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/containerd/ttrpc ] || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-containerd-ttrpc-dev >/dev/null
}
scripts/build-fixtures.sh
client=$root/tests/fixtures/bin/ttrpc-interop

declare -A scratch=([dynamic]=.build [static-stdlib]=.build-static [static-executable]=.build-sx)
declare -A flags=([dynamic]="" [static-stdlib]="-Xswiftc -static-stdlib" [static-executable]="-Xswiftc -static-executable")
modes=(dynamic static-stdlib static-executable)

kb() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/smaps_rollup"; }
mb() { awk -v v="$1" 'BEGIN {printf "%.1f", v/1024}'; }

tmp=$(mktemp -d /tmp/wbench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

start_servers() {  # start_servers BIN COUNT -> fills pids
  local bin=$1 count=$2 i
  pids=()
  for i in $(seq "$count"); do
    "$bin" "$tmp/s$i.sock" > "$tmp/s$i.out" 2>&1 &
    pids+=($!)
  done
  for i in $(seq "$count"); do
    for _ in $(seq 100); do grep -q listening "$tmp/s$i.out" && break; sleep 0.05; done
  done
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

rows=()
for mode in "${modes[@]}"; do
  # shellcheck disable=SC2086
  swift build -c release --product warden-ttrpc-echo --scratch-path "${scratch[$mode]}" ${flags[$mode]} >/dev/null
  bin=${scratch[$mode]}/release/warden-ttrpc-echo
  size=$(stat -c %s "$bin")

  start_servers "$bin" 1
  sleep 1
  p=${pids[0]}
  idle_rss=$(kb "$p" Rss); idle_pss=$(kb "$p" Pss); threads=$(ls "/proc/$p/task" | wc -l)
  "$client" client "$tmp/s1.sock" >/dev/null
  sleep 1
  load_rss=$(kb "$p" Rss); load_pss=$(kb "$p" Pss)
  stop_servers

  start_servers "$bin" 10
  sleep 1
  total=0
  for p in "${pids[@]}"; do total=$((total + $(kb "$p" Pss))); done
  stop_servers

  rows+=("| $mode | $(mb $((size / 1024))) | $(mb "$idle_rss") | $(mb "$idle_pss") | $(mb "$load_rss") | $(mb "$load_pss") | $(mb $((total / 10))) | $threads |")
done

{
  echo "# Warden benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(swift --version 2>&1 | head -1)."
  echo
  echo "## Idle ttrpc server process (warden-ttrpc-echo)"
  echo
  echo "MB; \"after load\" is after the Go client's interop checks (64 concurrent calls, 1 MiB payloads);"
  echo "\"PSS of 10\" is the mean PSS when ten servers run side by side."
  echo
  echo "| link mode | binary MB | idle RSS | idle PSS | after load RSS | after load PSS | PSS of 10 (each) | threads |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  scripts/bench-shims.sh
  echo
  scripts/bench-faults.sh
  echo
  scripts/bench-cri.sh
  echo
  scripts/bench-soak.sh
  echo
  scripts/bench-sandboxer.sh
  echo
  scripts/bench-channel.sh
} > "$out"
cat "$out"
