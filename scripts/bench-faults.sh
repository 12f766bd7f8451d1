#!/usr/bin/env bash
# The fault matrix: Warden beside containerd's runc shim (containerd-shim-runc-v2), both driving
# the same runsc, one private containerd, one run. For each fault — real runsc with its sandbox
# SIGSTOPped, and fake-runsc's injected faults — a container is run, SIGKILLed and removed
# with ctr, every ctr call bounded by 30 s; recorded: how each step ended and took, how long
# until the task was no longer running, and what was left (processes, runsc state files).
# Both shims run with their defaults (Warden: shim-config/warden.toml's deadlines).
# Prints a markdown section; scripts/bench.sh puts it into docs/benchmarks.md.
set -uo pipefail  # not -e: a hung or failed call is a result
cd "$(dirname "$0")/.."

. scripts/lib.sh
ensure_packages containerd runsc busybox-static
# Warden as shipped (scripts/build-shim.sh), fake-runsc built the same way beside it.
bin=$(WARDEN_EXTRA_PRODUCTS=fake-runsc scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null

tmp=$(mktemp -d /tmp/wbf-XXXXXX)
containerd_pid=""
ctr="timeout 30 ctr -a $tmp/c.sock -n $(private_namespace "$tmp")"
cleanup() {
  set +e
  stop_private_containerd "$tmp"
  [ -n "${BENCH_LOG:-}" ] && cp "$tmp/containerd.log" "$BENCH_LOG"
  rm -rf "$tmp"
}
trap cleanup EXIT

for kind in real fake; do
  binary=/usr/bin/runsc; [ $kind = fake ] && binary=$bin/fake-runsc
  printf 'runsc = "%s"\nroot = "%s"\n[runsc_config]\nnetwork = "none"\n' "$binary" "$tmp/warden-$kind" > "$tmp/warden-$kind.toml"
done
printf '#!/bin/sh\nexec /usr/bin/runsc --network=none "$@"\n' > "$tmp/runsc-none"
chmod +x "$tmp/runsc-none"
start_private_containerd "$tmp" "$bin"
$ctr images import tests/fixtures/bin/busybox-image.tar >/dev/null
image=warden.test/busybox:latest

flags() {  # flags SHIM KIND
  case $1-$2 in
    warden-*) echo "--runtime io.containerd.warden.v2 --runtime-config-path $tmp/warden-$2.toml" ;;
    runc-real) echo "--runtime io.containerd.runc.v2 --runc-binary $tmp/runsc-none --runc-root $tmp/runc-real" ;;
    runc-fake) echo "--runtime io.containerd.runc.v2 --runc-binary $bin/fake-runsc --runc-root $tmp/runc-fake" ;;
  esac
}
state_dir() {  # where runsc keeps state for SHIM KIND (the runc shim adds the namespace)
  case $1 in warden) echo "$tmp/warden-$2" ;; runc) echo "$tmp/runc-$2/$(private_namespace "$tmp")" ;; esac
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
step() {  # step LABEL ctr-args… -> "ok 12 ms" / "failed 40 ms" / "hung 30 s"
  local start rc took
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  $ctr "${@:2}" >"$tmp/out" 2>&1; rc=$?
  took=$(ms_since "$start")
  if [ $rc = 124 ]; then echo "hung (ctr's 30 s)"; elif [ $rc = 0 ]; then echo "ok, $took ms"; else echo "failed, $took ms"; fi
}
leaks() {  # leaks SHIM KIND ID -> "none" or what is left
  local procs files cgroups
  procs=$(for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$containerd_pid" ] && continue
    tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q "$tmp" && awk '{print $2}' "$d/stat" 2>/dev/null
  done | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
  # Files at any depth: Warden keeps each pod's runsc state under <root>/<namespace>/<pod>.
  files=$(find "$(state_dir "$1" "$2")" -type f ! -name faults ! -name fault-log 2>/dev/null | grep -v '/shim/' | wc -l)
  # The container's cgroup, counted once however many hierarchies hold it.
  cgroups=$(for m in $(awk '$4 == "/" && / - cgroup2? / {print $5}' /proc/self/mountinfo); do
    ls -d "$m/$(private_namespace "$tmp")"/*/ 2>/dev/null | xargs -r -n1 basename; done | sort -u | wc -l)
  local out=""
  [ -n "$procs" ] && out="processes: $procs"
  [ "$files" -gt 0 ] && out="${out:+$out; }$files runsc state files"
  [ "$cgroups" -gt 0 ] && out="${out:+$out; }$cgroups container cgroups"
  echo "${out:-none}"
}

# BENCH_FAULTS="kind:fault …" picks scenarios (default: all).
read -r -a scenarios <<< "${BENCH_FAULTS:-real:sigstop fake:hang-kill fake:hang-delete fake:hang-state fake:fail-start fake:crash-on-create fake:orphan-gofer}"
rows=()
for scenario in "${scenarios[@]}"; do
  kind=${scenario%%:*}; fault=${scenario#*:}
  for shim in warden runc; do
    id=$shim-$fault
    dir=$(state_dir $shim $kind); mkdir -p "$dir"
    case $fault in fail-start|crash-on-create|orphan-gofer) echo "$fault" > "$dir/faults" ;; esac
    # shellcheck disable=SC2046
    run=$(step run run -d $(flags $shim $kind) $image "$id" sleep 1000)
    for _ in $(seq 50); do $ctr task ls 2>/dev/null | grep -q "^$id .*RUNNING" && break; sleep 0.1; done
    case $fault in
      sigstop) pid=$($ctr task ls | awk -v id="$id" '$1 == id {print $2}'); [ -n "$pid" ] && kill -STOP "$pid" ;;
      hang-kill|hang-delete|hang-state) echo "$fault" > "$dir/faults" ;;
    esac
    start=$(date +%s%N)
    kill=$(step kill task kill -s SIGKILL "$id")
    stopped="not within 30 s"
    for _ in $(seq 300); do
      if ! $ctr task ls 2>/dev/null | grep -q "^$id .*\(RUNNING\|PAUSED\|CREATED\)"; then stopped="$(ms_since "$start") ms"; break; fi
      sleep 0.1
    done
    rm=$(step rm task rm -f "$id")
    $ctr containers rm "$id" >/dev/null 2>&1
    rm -f "$dir/faults"
    sleep 3  # what is still there now was left behind
    rows+=("| $fault ($kind runsc) | ${shim/runc/runc-v2} | $run | $kill | $stopped | $rm | $(leaks $shim $kind) |")
    # Start the next scenario clean: what this one left is removed by PID.
    for t in $($ctr task ls -q 2>/dev/null); do $ctr task rm -f "$t" >/dev/null 2>&1; done
    kill_processes_naming "$tmp" "$containerd_pid"
    remove_cgroups_under "$(private_namespace "$tmp")"
    sleep 0.5
  done
done

echo "## Fault matrix: Warden beside containerd's runc shim on the same runsc"
echo
echo "Written by \`scripts/bench-faults.sh\` (via \`scripts/bench.sh\`) on $(date -u +%Y-%m-%d): one private containerd"
echo "$(containerd --version | awk '{print $3}'), Debian runsc $(dpkg-query -W -f='${Version}' runsc) (\`network=none\`) or fake-runsc with the"
echo "fault injected, Warden as shipped (static executable), both shims with default settings (Warden: runsc_call_timeout 5s, kill_grace 2s,"
echo "stop_deadline 10s, delete_deadline 5s). Per row: \`ctr run -d\`, the fault, \`ctr task kill -s SIGKILL\`, time until"
echo "the task is no longer RUNNING/CREATED, \`ctr task rm -f\`, then what is left 3 s later. Every ctr call is"
echo "bounded at 30 s. The runc shim gets runsc or fake-runsc as its \`--runc-binary\`."
echo
echo "| fault | shim | run -d | kill SIGKILL | task not running after | task rm -f | left behind |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
