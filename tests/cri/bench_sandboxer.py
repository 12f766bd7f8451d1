"""podsandbox against shim on one node: the same Warden, the same runsc, one containerd 2.x.
`warden` (CRI runs a pause container as a task of Warden's, pause image warden.test/pause:1)
beside `warden-shim` (`sandboxer = "shim"`: CRI hands the pod to Warden through the Sandbox
API; Warden's own pause rootfs). Rounds alternate the modes, so drift on the node hits both.

Per round and mode: RunPodSandbox, StopPodSandbox and RemovePodSandbox of a pod with one
container (each call timed alone; the container's create/start between them is not counted).
Then `--alive` pods of each mode at once, each with one container: PSS (smaps_rollup, KiB) of
everything that is the pod's on the host: its shim and spawn helper, runsc-sandbox, gofer.

Prints a markdown section; the raw numbers go to --out as JSON.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crinode import SANDBOX_API, CRINode  # noqa: E402
from warden_cri import container_config, pod_config  # noqa: E402

MODES = {"podsandbox": "warden", "shim": "warden-shim"}
SLEEPER = ["sleep", "100000"]


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def one_pod(node, handler, name):
    config = pod_config(name, uid=f"{name}-uid", cgroup_parent=f"{node.cgroup_root}/{name}")
    pod_id, run = timed(node.client.run_pod, config, handler, timeout=60)
    node.pod_handlers[pod_id] = handler
    node.record_netns(pod_id)
    container = node.client.create_container(pod_id, container_config("app", "warden.test/busybox:latest", SLEEPER), config, timeout=60)
    node.client.start_container(container, timeout=60)
    return pod_id, run


def role(name, line):
    """What a process is: its argv[0] (runsc re-executes itself as runsc-sandbox and
    runsc-gofer, its comm then "exe"), and for a runsc CLI call its verb."""
    if name == "warden-spawner":  # forked from the shim: its argv is the shim's
        return name
    words = line.split()
    first = os.path.basename(words[0]) if words else name
    if first == "runsc":
        verb = next((w for w in words[1:] if not w.startswith("-")), "")
        return f"runsc {verb}".strip()
    return first if first != "exe" else name


def pod_processes(node, pod_id):
    """The pod's host processes: those whose command line names it (shim, helper, sandbox,
    gofers, runsc waits)."""
    return [(pid, role(name, line)) for pid, name, line in node.our_processes() if pod_id in line]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--alive", type=int, default=10)
    parser.add_argument("--out", default=".build/bench-sandboxer.json")
    arguments = parser.parse_args()
    if not SANDBOX_API:
        print("bench_sandboxer: the containerd under test has no Sandbox API (2.x needed)", file=sys.stderr)
        return 2
    node = CRINode()
    results = {mode: {"run": [], "stop": [], "remove": []} for mode in MODES}
    memory = {}
    try:
        node.start()
        # One pod each first: images unpacked, caches warm, not counted.
        for mode, handler in MODES.items():
            pod_id, _ = one_pod(node, handler, f"warm-{mode}")
            node.client.stop_pod(pod_id, timeout=60)
            node.client.remove_pod(pod_id, timeout=60)
        for round_number in range(arguments.rounds):
            order = list(MODES.items()) if round_number % 2 == 0 else list(reversed(MODES.items()))
            for mode, handler in order:
                pod_id, run = one_pod(node, handler, f"r{round_number}-{mode}")
                _, stop = timed(node.client.stop_pod, pod_id, timeout=60)
                _, remove = timed(node.client.remove_pod, pod_id, timeout=60)
                results[mode]["run"].append(run)
                results[mode]["stop"].append(stop)
                results[mode]["remove"].append(remove)
        for mode, handler in MODES.items():
            pods = [one_pod(node, handler, f"alive{i}-{mode}")[0] for i in range(arguments.alive)]
            time.sleep(3)  # settled: no create still in flight
            per_pod, kinds = [], {}
            for pod_id in pods:
                processes = pod_processes(node, pod_id)
                per_pod.append(sum(pss_kib(pid) for pid, _ in processes))
                counted = {}
                for pid, name in processes:
                    counted[name] = counted.get(name, 0) + pss_kib(pid)
                for name, kib in counted.items():
                    kinds.setdefault(name, []).append(kib)
            memory[mode] = {"per_pod_kib": per_pod, "by_process_kib": {k: statistics.mean(v) for k, v in kinds.items()}}
            for pod_id in pods:
                node.client.stop_pod(pod_id, timeout=60)
                node.client.remove_pod(pod_id, timeout=60)
        left = node.leaks()
    finally:
        node.cleanup()
    os.makedirs(os.path.dirname(arguments.out) or ".", exist_ok=True)
    with open(arguments.out, "w") as file:
        json.dump({"calls": results, "memory": memory, "left": left}, file, indent=1)

    def ms(values):
        return f"{statistics.median(values) * 1000:.0f} ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"

    print("| call, ms: median (min–max) | podsandbox | shim | shim / podsandbox |")
    print("|---|---|---|---|")
    for call, label in (("run", "RunPodSandbox"), ("stop", "StopPodSandbox"), ("remove", "RemovePodSandbox")):
        a, b = results["podsandbox"][call], results["shim"][call]
        print(f"| {label} | {ms(a)} | {ms(b)} | {statistics.median(b) / statistics.median(a):.2f} |")
    print()
    print(f"| {arguments.alive} pods alive, one container each | podsandbox | shim |")
    print("|---|---|---|")
    print(f"| PSS per pod, MiB (all its host processes) | "
          f"{statistics.mean(memory['podsandbox']['per_pod_kib']) / 1024:.1f} | {statistics.mean(memory['shim']['per_pod_kib']) / 1024:.1f} |")
    names = sorted(set(memory["podsandbox"]["by_process_kib"]) | set(memory["shim"]["by_process_kib"]))
    for name in names:
        a = memory["podsandbox"]["by_process_kib"].get(name)
        b = memory["shim"]["by_process_kib"].get(name)
        print(f"| {name}: PSS per pod, MiB | {'-' if a is None else f'{a / 1024:.2f}'} | {'-' if b is None else f'{b / 1024:.2f}'} |")
    print()
    print(f"Left by the node at the end: {', '.join(left) if left else 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
