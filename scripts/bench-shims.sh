#!/usr/bin/env bash
# Warden beside containerd's runc shim (containerd-shim-runc-v2), both driving the same Debian
# runsc through the same wrapper (it adds --network=none, as sandbox networking fails on these
# kernels, and logs each call's argv for the step timeline), in one private containerd, in one
# run. Prints a markdown section (scripts/bench.sh puts it into docs/benchmarks.md) and writes
# docs/benchmarks-shims.png. The measurements are tools/bench/shims.py's:
#   - `ctr run --rm … true` latency (BENCH_RUNS runs each, default 15, interleaved),
#   - where the time of one such run goes, step by step, for both shims (perf tracepoints),
#   - per-shim RSS / PSS / threads and `ctr run -d` latency with 1, 10 and 50 pods at once,
#     and one pod of 10 containers (grouped by io.kubernetes.cri.sandbox-id),
#   - SIGKILL → /tasks/exit latency on a healthy sandbox, beside runsc's own kill.
# Warden is the shipped build (scripts/build-shim.sh: release, -static-executable).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-15}
counts=${BENCH_POD_COUNTS:-1,10,50}

. scripts/lib.sh
ensure_packages containerd runsc busybox-static python3-matplotlib linux-perf
bin=$(scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null

tmp=$(mktemp -d /tmp/wbs-XXXXXX)
containerd_pid=""
cleanup() {
  set +e
  stop_private_containerd "$tmp"
  rm -rf "$tmp"
}
trap cleanup EXIT

printf '#!/bin/sh\necho "$$ $*" >> %s/argv.log\nexec /usr/bin/runsc --network=none "$@"\n' "$tmp" > "$tmp/runsc-none"
chmod +x "$tmp/runsc-none"
cat > "$tmp/warden.toml" <<TOML
runsc = "$tmp/runsc-none"
root = "$tmp/warden-runsc"
TOML
start_private_containerd "$tmp" "$bin"
ctr="ctr -a $tmp/c.sock -n $(private_namespace "$tmp")"
$ctr images import tests/fixtures/bin/busybox-image.tar >/dev/null
image=warden.test/busybox:latest

out=$(/usr/bin/python3 tools/bench/shims.py --ctr "$ctr" --image "$image" --runs "$runs" --counts "$counts" \
  --warden-flags "--runtime io.containerd.warden.v2 --runtime-config-path $tmp/warden.toml" \
  --runc-flags "--runtime io.containerd.runc.v2 --runc-binary $tmp/runsc-none --runc-root $tmp/runc-runsc" \
  --tmp "$tmp" --runsc "$tmp/runsc-none" --warden-root "$tmp/warden-runsc" --runc-root "$tmp/runc-runsc" \
  --plot docs/benchmarks-shims.png)
table=$(sed -n '1,/^$/p' <<< "$out" | sed '/^$/d')
steps=$(sed -n '/^STEPS$/,/^$/p' <<< "$out" | sed '1d;/^$/d')
raw=$(grep '^RAW ' <<< "$out" | cut -c5-)
echo "$raw" > "$tmp/raw.json"

echo "## Warden beside containerd's runc shim, both driving runsc"
echo
echo "Written by \`scripts/bench-shims.sh\` (via \`scripts/bench.sh\`) on $(date -u +%Y-%m-%d): one private containerd $(containerd --version | awk '{print $3}'),"
echo "Debian runsc $(dpkg-query -W -f='${Version}' runsc) (\`--network=none\`, through one wrapper script for both shims),"
echo "busybox image, Warden as shipped (\`scripts/build-shim.sh\`: release, \`-static-executable\`), $(nproc) cores."
echo "Memory is the shim processes' own (smaps_rollup; sandbox and gofer not included), per shim;"
echo "PSS shares the binary's pages among the shims running. Ratio = Warden / runc shim."
echo
echo "| | Warden | runc shim | ratio |"
echo "|---|---|---|---|"
echo "$table"
echo
echo "![ctr run -d latency and PSS per shim against pods running](benchmarks-shims.png)"
echo
echo "### Where the time of one \`ctr run --rm … true\` goes"
echo
echo "From perf's \`sched_process_exec\`/\`sched_process_exit\` tracepoints (no ptrace: runsc's sandbox"
echo "cannot run under strace) and the wrapper's argv log, ms from the exec of \`ctr\`. \`shim server\` is"
echo "the long-running shim (Warden's lives until containerd's Shutdown after Delete). A run's total is"
echo "\`ctr\`'s own row; the gaps between rows are containerd and ctr (snapshots, mounts, events)."
echo
echo "$steps"
