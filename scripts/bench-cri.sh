#!/usr/bin/env bash
# Through Kubernetes' CRI: a private containerd 1.6.20 with its CRI plugin (tests/cri/crinode.py),
# Warden as shipped (scripts/build-shim.sh). Runs the CRI suite's wedged-pod cases (Warden, then containerd's runc shim
# driving the same runsc on the same fault, kubelet-like 20 s deadline per call) and the 20-pod
# loops, and prints what they recorded as a markdown section (scripts/bench.sh puts it into
# docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages containerd runsc busybox-static python3-grpcio python3-protobuf gcc libc6-dev \
  iproute2 containernetworking-plugins
# Warden as shipped (scripts/build-shim.sh), fake-runsc built the same way beside it.
bin=$(WARDEN_EXTRA_PRODUCTS=fake-runsc scripts/build-shim.sh)
scripts/build-test-image.sh >/dev/null
record=$(mktemp /tmp/wbench-cri-XXXXXX)
trap 'rm -f "$record"' EXIT
WARDEN_BIN=$bin WARDEN_CRI_RECORD=$record \
  /usr/bin/python3 -m unittest discover -s tests/cri -k WedgedPodTests -k PodLoopTests >&2

echo "## Through CRI: StopPodSandbox of a wedged pod, and pods in a loop"
echo
echo "Written by \`scripts/bench-cri.sh\` (via \`scripts/bench.sh\`) on $(date -u +%Y-%m-%d): containerd"
echo "$(containerd --version | awk '{print $3}') with its CRI plugin, Debian runsc $(dpkg-query -W -f='${Version}' runsc) (\`network=none\`) or fake-runsc,"
echo "Warden as shipped (static executable), driven through CRI v1 by tools/cri. Warden's deadlines: runsc_call_timeout 2s,"
echo "kill_grace 1s, stop_deadline 5s, delete_deadline 5s. Each StopPodSandbox/RemovePodSandbox"
echo "call has a 20 s deadline (kubelet's is 2 min); DEADLINE_EXCEEDED is kubelet's"
echo "\`context deadline exceeded\`. Warden's pods have two containers; the runc shim's pods are the"
echo "sandbox alone (with the runc shim, runsc never starts a second container of a pod)."
echo "\"left\" is what the leak audit found right after the calls (processes, mounts, the pod's"
echo "netns, runsc state, CNI address)."
echo
echo '```'
cat "$record"
echo '```'
