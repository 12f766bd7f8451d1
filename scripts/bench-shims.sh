#!/usr/bin/env bash
# Warden beside containerd's runc shim (containerd-shim-runc-v2), both driving the same Debian
# runsc, in one private containerd, in one run. Prints a markdown section (scripts/bench.sh
# puts it into docs/benchmarks.md):
#   - `ctr run --rm … true` latency (N runs each, median and p90),
#   - shim memory with 1 pod of 1 container, 10 pods of 1 container (10 shims), and 1 pod of
#     10 containers (grouped by io.kubernetes.cri.sandbox-id; runsc subcontainers).
# The runc shim gets runsc through a wrapper adding --network=none (sandbox networking fails
# on these kernels), which Warden gets from [runsc_config].
set -uo pipefail  # not -e: a timed-out ctr call is a result
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-10}

. scripts/lib.sh
ensure_packages containerd runsc busybox-static
swift build -c release --product containerd-shim-warden-v2 >/dev/null
bin=$(swift build -c release --show-bin-path)
scripts/build-test-image.sh >/dev/null

tmp=$(mktemp -d /tmp/wbs-XXXXXX)
containerd_pid=""
# Every ctr call is bounded: a shim that hangs is a result to record, not a reason to hang.
ctr="timeout 30 ctr -a $tmp/c.sock -n $(private_namespace "$tmp")"
cleanup() {
  set +e
  stop_private_containerd "$tmp"
  rm -rf "$tmp"
}
trap cleanup EXIT

cat > "$tmp/warden.toml" <<TOML
runsc = "/usr/bin/runsc"
root = "$tmp/warden-runsc"
[runsc_config]
network = "none"
TOML
printf '#!/bin/sh\nexec /usr/bin/runsc --network=none "$@"\n' > "$tmp/runsc-none"
chmod +x "$tmp/runsc-none"
start_private_containerd "$tmp" "$bin"
$ctr images import tests/fixtures/bin/busybox-image.tar >/dev/null
image=warden.test/busybox:latest

declare -A flags
flags[warden]="--runtime io.containerd.warden.v2 --runtime-config-path $tmp/warden.toml"
flags[runc]="--runtime io.containerd.runc.v2 --runc-binary $tmp/runsc-none --runc-root $tmp/runc-runsc"
declare -A shimname=([warden]=containerd-shim-warden-v2 [runc]=containerd-shim-runc-v2)

kb() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
mb() { awk -v v="$1" 'BEGIN {printf "%.1f", v/1024}'; }
shim_pids() {  # live shim processes of this containerd for runtime $1
  for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
    case "$cmd" in *"${shimname[$1]}"*"$tmp/c.sock"*) echo "${d#/proc/}" ;; esac
  done
}
memory() {  # memory RUNTIME DIVISOR -> "rss_each pss_each count"
  local rss=0 pss=0 n=0 p
  for p in $(shim_pids "$1"); do rss=$((rss + $(kb "$p" Rss))); pss=$((pss + $(kb "$p" Pss))); n=$((n + 1)); done
  echo "$(mb $((rss / $2))) $(mb $((pss / $2))) $n"
}
stop_all() {  # prints the ms from SIGKILL of every task to none RUNNING (or "not within 20 s")
  local start
  start=$(date +%s%N)
  for id in $($ctr task ls -q); do $ctr task kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  local stopped="not within 20 s"
  for _ in $(seq 200); do
    if ! $ctr task ls | grep -q RUNNING; then stopped="$(( ($(date +%s%N) - start) / 1000000 )) ms"; break; fi
    sleep 0.1
  done
  echo "$stopped" > "$tmp/stopped"
  for id in $($ctr task ls -q); do $ctr task rm "$id" >/dev/null 2>&1 || true; done
  for id in $($ctr containers ls -q); do $ctr containers rm "$id" >/dev/null 2>&1 || true; done
  sleep 1
}

declare -A result
for rt in warden runc; do
  # shellcheck disable=SC2086
  $ctr run --rm ${flags[$rt]} $image warm-$rt true >/dev/null 2>&1 || true
  times=()
  for i in $(seq "$runs"); do
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    $ctr run --rm ${flags[$rt]} $image lat-$rt-$i true >/dev/null
    times+=($(( ($(date +%s%N) - start) / 1000000 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  result[$rt,median]=${sorted[$(( runs / 2 ))]}
  result[$rt,p90]=${sorted[$(( runs * 9 / 10 < runs ? runs * 9 / 10 : runs - 1 ))]}

  # shellcheck disable=SC2086
  $ctr run -d ${flags[$rt]} $image one-$rt sleep 1000 >/dev/null
  sleep 2
  result[$rt,one]=$(memory $rt 1)
  stop_all

  for i in $(seq 10); do
    # shellcheck disable=SC2086
    $ctr run -d ${flags[$rt]} $image pod$i-$rt sleep 1000 >/dev/null
  done
  sleep 2
  result[$rt,ten]=$(memory $rt 10)
  stop_all

  # shellcheck disable=SC2086
  $ctr run -d ${flags[$rt]} --annotation io.kubernetes.cri.container-type=sandbox \
    --annotation io.kubernetes.cri.sandbox-id=grp-$rt $image grp-$rt sleep 1000 >/dev/null
  for i in $(seq 2 10); do
    # shellcheck disable=SC2086
    $ctr run -d ${flags[$rt]} --annotation io.kubernetes.cri.container-type=container \
      --annotation io.kubernetes.cri.sandbox-id=grp-$rt $image grp$i-$rt sleep 1000 >/dev/null
  done
  sleep 2
  running=$($ctr task ls | grep -c RUNNING || true)
  result[$rt,pod10]="$(memory $rt 1) $running"
  stop_all
  result[$rt,pod10stop]=$(cat "$tmp/stopped")
done

row() {  # row RUNTIME
  read -r one_rss one_pss _ <<< "${result[$1,one]}"
  read -r ten_rss ten_pss ten_n <<< "${result[$1,ten]}"
  read -r pod_rss pod_pss pod_n pod_running <<< "${result[$1,pod10]}"
  echo "| ${shimname[$1]} | ${result[$1,median]} | ${result[$1,p90]} | $one_rss / $one_pss | $ten_rss / $ten_pss ($ten_n shims) | $pod_rss / $pod_pss ($pod_n shim(s), $pod_running running) | ${result[$1,pod10stop]} |"
}
echo "## Warden beside containerd's runc shim, both driving runsc"
echo
echo "Written by \`scripts/bench-shims.sh\` (via \`scripts/bench.sh\`) on $(date -u +%Y-%m-%d): one private containerd $(containerd --version | awk '{print $3}'),"
echo "Debian runsc $(dpkg-query -W -f='${Version}' runsc), \`network=none\`, busybox image, release builds, $(nproc) cores."
echo "Latency: \`ctr run --rm IMAGE ID true\`, $runs runs each after one warm-up, ms. Memory: MB of the shim processes"
echo "(RSS / PSS from smaps_rollup, sandbox and gofer not included), per pod."
echo
echo "| shim | run --rm median ms | p90 ms | 1 pod, 1 container: RSS / PSS | 10 pods of 1: RSS / PSS each | 1 pod of 10 containers: RSS / PSS | that pod SIGKILLed → no task RUNNING |"
echo "|---|---|---|---|---|---|---|"
row warden
row runc
