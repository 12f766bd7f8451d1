#!/usr/bin/env bash
# Warden demo: on a fresh Debian 12 machine, installs what it needs, builds the shim, starts a
# private containerd (its own root, state, socket and config under a temp dir) with Warden on
# its PATH, and runs gVisor containers through it with ctr: output and exit code, an exec, a
# SIGKILL'd container's exit, a pod of two containers sharing one shim, and a wedged sandbox
# (runsc-sandbox SIGSTOPped, so runsc kill hangs) stopped within its deadline, with the steps
# of the termination ladder, their timings and the shim's metrics; then warden status, doctor
# and sweep on a stuck runc-shim pod beside a live Warden pod; then the CRI path. Everything it
# started is stopped by PID at the end, and the temp dir removed.
#
#   scripts/demo.sh [current|lts|bookworm]   the release set it runs on (scripts/releases.sh):
#                                            default current = containerd 2.x + runsc 2024
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
release_set=${1:-${WARDEN_RELEASE_SET:-current}}

. scripts/lib.sh
# python3-grpcio, gcc, iproute2, CNI plugins: the CRI part (tests/cri/demo_cri.py).
ensure_packages containerd runsc busybox-static python3 bsdutils python3-grpcio python3-protobuf gcc libc6-dev \
  iproute2 containernetworking-plugins

echo "== release set $release_set (scripts/releases.sh)"
eval "$(scripts/releases.sh "$release_set" --env)"
# containerd, ctr, its runc shim and runsc of the set, here and in the CRI part.
export WARDEN_CONTAINERD_DIR WARDEN_RUNSC
runsc=$WARDEN_RUNSC

echo "== building the shim (scripts/build-shim.sh: release, static executable, as shipped)"
bin=$(scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null

dir=$(mktemp -d /tmp/warden-demo-XXXXXX)
containerd_pid=""
cleanup() {
  set +e
  stop_private_containerd "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/warden.toml" <<TOML
runsc = "$runsc"
root = "$dir/runsc"
[deadlines]
runsc_call_timeout = "2s"
kill_grace = "1s"
stop_deadline = "5s"
delete_deadline = "5s"
[runsc_config]
network = "none"   # --network=sandbox fails on these kernels
[metrics]
dir = "$dir/metrics"
TOML

echo "== starting a private containerd in $dir"
start_private_containerd "$dir" "$bin"
ctr="$WARDEN_CONTAINERD_DIR/ctr -a $dir/c.sock -n $(private_namespace "$dir")"
runtime=(--runtime io.containerd.warden.v2 --runtime-config-path "$dir/warden.toml")
image=warden.test/busybox:latest
$ctr images import tests/fixtures/bin/busybox-image.tar >/dev/null

echo
echo "== ctr run --rm: a container in gVisor (the kernel it sees is gVisor's)"
set +e
$ctr run --rm "${runtime[@]}" $image demo-hello sh -c 'echo "hello from $(uname -s) $(uname -r) in gVisor"; exit 3'
echo "   exit code: $? (the container's own: 3)"
set -e

echo
echo "== ctr run -d, then an exec, ps and metrics"
$ctr run -d "${runtime[@]}" $image demo-long sleep 1000
set +e
$ctr task exec --exec-id demo-exec demo-long sh -c 'echo "exec inside the sandbox: pid $$"; exit 5'
echo "   exec exit code: $?"
set -e
$ctr task ps demo-long
$ctr task metrics demo-long | sed -n '1,8p'

echo
echo "== a pod: a second container joins the first one's sandbox and shim"
$ctr run -d "${runtime[@]}" --annotation io.kubernetes.cri.container-type=container \
  --annotation io.kubernetes.cri.sandbox-id=demo-long $image demo-app sh -c 'echo app up; sleep 1000'
$ctr task ls
echo "   shim processes serving the pod: $(pgrep -f -- "-address $dir/c.sock" | wc -l)"

echo
echo "== ctr task kill -s SIGKILL: the pod stops, its exit is reported, nothing is left"
start=$(date +%s%N)
$ctr task kill -s SIGKILL demo-long
for _ in $(seq 100); do $ctr task ls | grep -q "demo-long.*STOPPED" && break; sleep 0.05; done
echo "   stopped after $(( ($(date +%s%N) - start) / 1000000 )) ms"
$ctr task ls
$ctr task rm demo-app; $ctr containers rm demo-app
$ctr task rm demo-long 2>&1 | sed 's/^/   /'; $ctr containers rm demo-long
sleep 0.5
left=$(pgrep -f -- "$dir" | grep -v "^$containerd_pid$" || true)
echo "   processes left (shim, runsc-sandbox, runsc-gofer): ${left:-none}"

echo
echo "== a wedged sandbox: runsc-sandbox SIGSTOPped, so runsc kill cannot reach the sentry"
echo "   deadlines: runsc_call_timeout 2s, kill_grace 1s, stop_deadline 5s, delete_deadline 5s"
$ctr run -d "${runtime[@]}" $image demo-wedged sleep 1000
for _ in $(seq 100); do $ctr task ls | grep -q "demo-wedged.*RUNNING" && break; sleep 0.05; done
sandbox_pid=$($ctr task ls | awk '$1 == "demo-wedged" {print $2}')
kill -STOP "$sandbox_pid"
echo "   runsc-sandbox (pid $sandbox_pid): $(awk '{print "state " $3}' "/proc/$sandbox_pid/stat")"
start=$(date +%s%N)
$ctr task kill -s SIGKILL demo-wedged
echo "   Kill returned after $(( ($(date +%s%N) - start) / 1000000 )) ms"
for _ in $(seq 200); do $ctr task ls | grep -q "demo-wedged.*STOPPED" && break; sleep 0.05; done
echo "   STOPPED after $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "   its shim's metrics (warden metrics, the Prometheus textfile), before the task is removed:"
sleep 0.5
$bin/warden metrics --dir "$dir/metrics" \
  | grep -E '^warden_(termination_seconds_(count|sum)|escalation_steps_total.*step="(runsc_kill_failed|grace_expired|sigkill|reap_timed_out)"|runsc_call_timeouts_total|exits_published_total)' \
  | sed 's/namespace="[^"]*",pod="demo-wedged",//; s/{namespace="[^"]*",pod="demo-wedged"}//; s/^/     /'
start=$(date +%s%N)
$ctr task rm demo-wedged 2>&1 | sed 's/^/   /'
echo "   Delete took $(( ($(date +%s%N) - start) / 1000000 )) ms"
$ctr containers rm demo-wedged
sleep 0.5
python3 - "$dir/containerd.log" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if "termination sandbox=demo-wedged" in l]
if not lines:
    sys.exit("   no termination record logged")
record = lines[-1].split('msg="', 1)[1]
print("   the shim's termination record, step by step:")
for name, ms, detail in re.findall(r'(\w+)=(\d+)ms\(([^)]*)\)', record):
    print(f"     {name:<11} {ms:>6} ms  {detail}")
total = re.search(r'total=(\d+)ms', record).group(1)
outcome = re.search(r'outcome=\\"([^\\]*)', record).group(1)
print(f"     {'total':<11} {total:>6} ms  {outcome}")
PY
left=$(pgrep -f -- "$dir" | grep -v "^$containerd_pid$" || true)
echo "   processes left: ${left:-none}; runsc state left: $(find "$dir/runsc" ! -type d 2>/dev/null | grep -v '/shim/' | wc -l) files"

echo
echo "== the operator's view: a stuck pod of containerd's runc shim on the same runsc"
echo "   (its sandbox SIGSTOPped, its kill hung, its shim killed by hand), beside a live Warden pod"
printf '#!/bin/sh\nexec %s --network=none "$@"\n' "$runsc" > "$dir/runsc-none"
chmod +x "$dir/runsc-none"
runc=(--runtime io.containerd.runc.v2 --runc-binary "$dir/runsc-none" --runc-root "$dir/runc")
$ctr run -d "${runtime[@]}" $image demo-live sleep 1000
$ctr run -d "${runc[@]}" $image demo-runc sleep 1000
for _ in $(seq 100); do $ctr task ls | grep -q "demo-runc.*RUNNING" && break; sleep 0.05; done
kill -STOP "$($ctr task ls | awk '$1 == "demo-runc" {print $2}')"
set +e
timeout 5 $ctr task kill -s SIGKILL demo-runc >/dev/null 2>&1
echo "   runc shim: ctr task kill -s SIGKILL demo-runc hung (stopped after 5 s by timeout: exit $?)"
set -e
for d in /proc/[0-9]*; do
  if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -- "containerd-shim-runc-v2 .*-id demo-runc .*$dir/c.sock"; then
    echo "   the operator's kill -9 of the stuck runc shim (pid ${d#/proc/})"
    kill -9 "${d#/proc/}"
  fi
done
sleep 8  # containerd's own cleanup of the dead shim runs its delete, which hangs on runsc too
scope=(--state "$dir/state" --runsc-root "$dir/runsc" --runsc-root "$dir/runc" --address "$dir/c.sock" --config "$dir/warden.toml")
echo "-- warden status"
$bin/warden status --config "$dir/warden.toml" | sed 's/^/   /'
echo "-- warden doctor"
$bin/warden doctor "${scope[@]}" | sed 's/^/   /' || true
echo "-- warden sweep --dry-run"
$bin/warden sweep --dry-run "${scope[@]}" | grep -E '^ +would' | sort | uniq -c | sed 's/^/   /'
echo "-- warden sweep"
$bin/warden sweep "${scope[@]}" | grep -E '^[a-z-]+:|done:|FAILED' | paste - - | awk -F'\t' '{print "   " $1 " ->" $2}' | sed 's/    done:/ /'
echo "-- warden doctor, again"
$bin/warden doctor "${scope[@]}" | sed 's/^/   /'
echo "   the live Warden pod: $($ctr task ls | awk '$1 == "demo-live" {print $3}')"
$ctr task kill -s SIGKILL demo-live
for _ in $(seq 100); do $ctr task ls | grep -q "demo-live.*STOPPED" && break; sleep 0.05; done
$ctr task rm demo-live >/dev/null
$ctr task rm -f demo-runc >/dev/null 2>&1 || true
$ctr containers rm demo-live demo-runc >/dev/null 2>&1 || true

echo
echo "== Kubernetes' path: containerd's CRI plugin, runtime handler 'warden', a wedged pod"
WARDEN_BIN=$bin /usr/bin/python3 tests/cri/demo_cri.py

echo
echo "== done; stopping containerd (pid $containerd_pid) and removing $dir"
