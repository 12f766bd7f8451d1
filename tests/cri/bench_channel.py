"""What a pod costs the node beyond its sandbox, and how its containers' exits reach
containerd: Warden on the sandbox's control channel (`control_channel = "auto"`), and Warden on
runsc's CLI (`"off"`), driving the same runsc on one node, in one run, pods alternating. runsc is wrapped so that every runsc process a shim starts is logged (runsc's own
re-executions as runsc-sandbox, runsc-gofer and exec children are not new invocations).

1. A pod's life, counted: RunPodSandbox with two containers, one ExecSync, one
   ContainerStats per container, StopPodSandbox, RemovePodSandbox; the runsc invocations
   each mode made, by verb.
2. `--alive` pods of two containers per mode at once, idle: PSS of the processes the shim
   keeps for each pod other than runsc-sandbox and its gofers (the shim, its spawn helper,
   `runsc wait` and any other runsc it still waits on), and how many runsc processes other
   than sandbox and gofer stay alive.
containerd's runc shim is not a column here: under CRI on this node it cannot start a
container in a runsc pod, nor stop the pod sandbox alone (StartContainer and StopPodSandbox
both hang past CRI's 60 s deadline, containerd 2.1.9 + runsc 2024). scripts/bench-shims.sh
sets it beside Warden through ctr, in one run, pods of one container.

3. SIGKILL of a container (StopContainer with timeout 0) to its /tasks/exit as a `ctr
   events` subscriber receives it, `--kills` times per mode.

Prints a markdown section; the raw numbers go to --out as JSON."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# Every runsc call is logged by a wrapper; crinode reads WARDEN_RUNSC at import.
LOG_DIR = tempfile.mkdtemp(prefix="wbench-runsc-")
REAL_RUNSC = os.environ.get("WARDEN_RUNSC") or "/usr/bin/runsc"
WRAPPER = os.path.join(LOG_DIR, "runsc")
CALLS = os.path.join(LOG_DIR, "calls")
with open(WRAPPER, "w") as file:
    file.write(f'#!/bin/sh\necho "$*" >> {CALLS}\nexec {REAL_RUNSC} "$@"\n')
os.chmod(WRAPPER, 0o755)
os.environ["WARDEN_RUNSC"] = WRAPPER

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crinode import K8S_NAMESPACE, CRINode  # noqa: E402
from bench_sandboxer import pss_kib  # noqa: E402

MODES = {"control": "warden", "cli": "warden"}
SLEEPER = ["sleep", "100000"]


def verb(line):
    """A logged runsc command line's subcommand: the first word that is not a flag or a
    flag's value (go-runc passes `--root DIR`, `--log FILE`, `--log-format json`)."""
    words = line.split()
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("--"):
            skip = "=" not in word and word[2:] in ("root", "log", "log-format", "panic-log", "debug-log")
            continue
        return word
    return "?"


def calls_so_far():
    try:
        with open(CALLS) as file:
            return file.read().splitlines()
    except FileNotFoundError:
        return []


class Bench:
    def __init__(self, node):
        self.node = node
        self.config = node.path("warden.toml")
        with open(self.config) as file:
            self.original = file.read()

    def mode(self, mode):
        """Warden's handler config for the next pods (each shim reads it when it starts)."""
        with open(self.config, "w") as file:
            file.write(('control_channel = "off"\n' if mode == "cli" else "") + self.original)

    def run_pod(self, name, mode):
        print(f"bench_channel: {name}", file=sys.stderr, flush=True)
        self.mode(mode)
        return self.node.run_pod(name, MODES[mode], [("a", SLEEPER), ("b", SLEEPER)])

    def processes(self, pod_id, containers):
        """The pod's host processes other than runsc-sandbox and gofers: (pid, role)."""
        found = []
        for pid, name, line in self.node.our_processes():
            if pod_id not in line and not any(c in line for c in containers):
                continue
            words = line.split()
            if name in ("runsc-sandbox", "runsc-gofer") or "boot" in words or "gofer" in words:
                continue
            if name == "exe" or (words and os.path.basename(words[0]) in ("runsc", "runsc-sandbox", "runsc-gofer")):
                role = f"runsc {verb(' '.join(words[1:]))}"
                if role in ("runsc boot", "runsc gofer"):
                    continue
            else:
                role = name
            found.append((pid, role))
        return found

    def life(self, mode, number):
        """One pod's life; the runsc invocations made, by verb."""
        client = self.node.client
        before = len(calls_so_far())
        pod_id, containers = self.run_pod(f"life{number}-{mode.replace(' ', '-')}", mode)
        client.exec_sync(containers[0], ["true"], timeout=30)
        for container in containers:
            client.container_stats(container, timeout=30)
        client.stop_pod(pod_id, timeout=60)
        client.remove_pod(pod_id, timeout=60)
        time.sleep(1)  # the last `delete`s of the cleanup
        counted = {}
        for line in calls_so_far()[before:]:
            counted[verb(line)] = counted.get(verb(line), 0) + 1
        return counted

    def alive(self, mode, count):
        pods = [self.run_pod(f"alive{i}-{mode.replace(' ', '-')}", mode) for i in range(count)]
        time.sleep(5)  # settled: no create still in flight, the probe made
        per_pod, by_role, runsc_alive = [], {}, []
        for pod_id, containers in pods:
            processes = self.processes(pod_id, containers)
            per_pod.append(sum(pss_kib(pid) for pid, _ in processes))
            runsc_alive.append(sum(1 for _, role in processes if role.startswith("runsc")))
            for pid, role in processes:
                by_role.setdefault(role, []).append(pss_kib(pid))
        for pod_id, _ in pods:
            self.node.client.stop_pod(pod_id, timeout=60)
            self.node.client.remove_pod(pod_id, timeout=60)
        return {"per_pod_kib": per_pod, "runsc_alive": runsc_alive,
                "by_role_kib": {role: sum(v) / count for role, v in by_role.items()}}

    def kills(self, mode, count):
        """StopContainer(timeout 0) of one container of a live pod → its /tasks/exit seen."""
        events = subprocess.Popen(
            [os.path.join(self.node.containerd_dir, "ctr"), "-a", self.node.socket, "-n", K8S_NAMESPACE, "events"],
            stdout=subprocess.PIPE, text=True)
        seen = {}
        lock = threading.Lock()

        def read():
            for line in events.stdout:
                if "/tasks/exit" in line:
                    with lock:
                        for container_id in list(waiting):
                            if container_id in line:
                                seen[container_id] = time.monotonic()
        waiting = set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        took = []
        try:
            time.sleep(0.5)
            for number in range(count):
                pod_id, (victim, _) = self.run_pod(f"kill{number}-{mode.replace(' ', '-')}", mode)
                time.sleep(0.5)
                with lock:
                    waiting.add(victim)
                started = time.monotonic()
                self.node.client.stop_container(victim, 0, timeout=30)
                deadline = time.monotonic() + 10
                while victim not in seen and time.monotonic() < deadline:
                    time.sleep(0.001)
                if victim in seen:
                    took.append(seen[victim] - started)
                self.node.client.stop_pod(pod_id, timeout=60)
                self.node.client.remove_pod(pod_id, timeout=60)
        finally:
            events.terminate()
            events.wait(10)
        return took


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alive", type=int, default=10)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", default=".build/bench-channel.json")
    arguments = parser.parse_args()
    node = CRINode()
    results = {}
    try:
        node.start()
        bench = Bench(node)
        for mode in MODES:  # warm: images unpacked, not counted
            pod_id, _ = bench.run_pod(f"warm-{mode.replace(' ', '-')}", mode)
            node.client.stop_pod(pod_id, timeout=60)
            node.client.remove_pod(pod_id, timeout=60)
        for mode in MODES:
            results[mode] = {"life": bench.life(mode, 0)}
        for mode in MODES:
            results[mode]["alive"] = bench.alive(mode, arguments.alive)
        for mode in MODES:
            results[mode]["kill_s"] = bench.kills(mode, arguments.kills)
        bench.mode("control")
        left = node.leaks()
    finally:
        node.cleanup()
    os.makedirs(os.path.dirname(arguments.out) or ".", exist_ok=True)
    with open(arguments.out, "w") as file:
        json.dump({"results": results, "left": left}, file, indent=1)

    names = list(MODES)
    print("| | Warden, control channel | Warden, runsc CLI |")
    print("|---|---|---|")
    lives = [results[m]["life"] for m in names]
    print("| runsc processes started over a pod's life (2 containers, 1 exec, a stats per container, stop, remove) | "
          + " | ".join(str(sum(l.values())) for l in lives) + " |")
    for v in sorted(set().union(*lives)):
        print(f"| … `runsc {v}` | " + " | ".join(str(l.get(v, 0)) for l in lives) + " |")
    alive = [results[m]["alive"] for m in names]
    print(f"| {arguments.alive} idle pods of 2 containers: PSS per pod of what the shim keeps, MiB (sandbox and gofers not counted) | "
          + " | ".join(f"{statistics.mean(a['per_pod_kib']) / 1024:.2f}" for a in alive) + " |")
    for role in sorted(set().union(*[a["by_role_kib"] for a in alive])):
        print(f"| … {role}, MiB per pod | " + " | ".join(
            f"{a['by_role_kib'][role] / 1024:.2f}" if role in a["by_role_kib"] else "-" for a in alive) + " |")
    print("| runsc processes alive per idle pod, besides sandbox and gofers | "
          + " | ".join(f"{statistics.mean(a['runsc_alive']):.1f}" for a in alive) + " |")
    kills = [results[m]["kill_s"] for m in names]
    print(f"| StopContainer(timeout 0) → /tasks/exit at a `ctr events` subscriber, ms: median (min–max) of {arguments.kills} | "
          + " | ".join(f"{statistics.median(k) * 1000:.1f} ({min(k) * 1000:.1f}–{max(k) * 1000:.1f})" if k else "none seen" for k in kills) + " |")
    print()
    print(f"Left by the node at the end: {', '.join(left) if left else 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
