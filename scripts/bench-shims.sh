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
echo "PSS shares the binary's pages among the shims running. A Warden shim is counted together with"
echo "its spawn helper (the process that execs runsc for the seccomp-confined shim): RSS, PSS and"
echo "threads are the pair's sums, so the helper's RSS (shared pages of the shim's image) is counted"
echo "twice in RSS, once in PSS. Ratio = Warden / runc shim."
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
echo
cat <<'TEXT'
What the timeline showed, and what was changed (issue 12). Measured with this timeline on
2026-12-01 before the changes, on the same machine (one traced run each; ms):

| step | Warden before | Warden now | why it was slower, and the change |
|---|---|---|---|
| `shim start` | 21 | ~3 | Swift's concurrency runtime started (threads, libdispatch) for a command that only prints an address, and `exit` ran runtime teardown while containerd waited: `start` now runs on the main thread and `_exit`s right after its output (`delete` too). |
| shim server exec → `runsc create` | 18 | ~4 | the same runtime start on the server's path before it answered Create. |
| Delete RPC, before `runsc delete` | 94 | ~5 | the stdin pump was a thread polling with a 100 ms timeout, and `stop()` waited for its next tick; a 20 ms sleep loop waited for the output pumps. Now one epoll-driven copier thread for all of a pod's streams: stop, EOF and CloseIO act at once. |
| `runsc delete` in Delete (root of a reaped sandbox) | 25 | not run | the sandbox is already reaped through its pidfd; Warden removes runsc's state files and the cgroup itself (poststop hooks still go through `runsc delete`). The runc shim runs `runsc delete` twice (Delete, then `shim delete`). |
| Shutdown → connection closed (containerd waits for it before `shim delete`) | 23 | ~1 | a fixed 20 ms sleep let the Shutdown answer go out; now the server closes once every request in flight is answered. |
| threads of a pod of 10 containers with execs | 29 | 7 | a reader and a writer thread per ttrpc connection (containerd opens one per task), an accept thread, a thread per stdio stream: now one ttrpc loop and one stdio copier (FootprintTests holds the bound). |

The older figure in this file's history (2026-11-23: `run --rm` 856 vs 331 ms with the image)
predates these measurements; on main at the start of this work the image path measured
280–390 ms against the runc shim's 273–310 ms in one run, the gap being the rows above.
`runsc create` and `runsc start` are runsc's own work; `runsc create` measured 8–15 ms longer
under Warden than under the runc shim in each of four timelines (same wrapper, same flags but
`--root`; cause not found). `ctr run --rm` medians of three full runs on 2026-12-01: 241 vs 279,
244 vs 260 and 263 vs 273 ms (ratios 0.86, 0.94, 0.96); the tables above are the last run's.
TEXT
