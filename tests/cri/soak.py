#!/usr/bin/env python3
"""Chaos soak through CRI (scripts/soak.sh runs it): pods of 1–3 containers created and
removed at a set concurrency for a set time on a private node (crinode.py), each living 2–8 s
and drawing a fault at random (a restart a quarter as often as the others):

  none           nothing
  sigstop        runsc-sandbox SIGSTOPped (real runsc): runsc kill cannot reach the sentry
  hang-kill      fake-runsc's `runsc kill` hangs (a fault file in the pod's own runsc root)
  hang-delete    fake-runsc's `runsc delete` hangs
  shim-kill      the pod's Warden shim SIGKILLed before the stop (containerd's cleanup runs)
  restart        containerd restarted while the pod's StopPodSandbox is in flight (its
                 sandbox SIGSTOPped too, so that the stop is still running when it restarts)
  pinned-netns   a process outside the pod holds the pod's network namespace

Per pod it records the fault, the stop and remove times, every CRI error by message and what
the pod left (its processes, netns, runsc root, container cgroups); every 2 s it samples
containerd's and the shims' RSS and open descriptors. With --check the run fails unless:
every StopPodSandbox ends within stop_deadline + 1 s (a restarted containerd's retried stop
measured from the retry), no CRI error but those a fault makes by design (BY_DESIGN), nothing
left by any pod nor by the node at the end, no containerd descriptor naming a pod (or one of
its containers) 5 s after its RemovePodSandbox returned, at any sample or at the end, and
containerd's RSS and other descriptors and the shims' anonymous memory and descriptors flat (slopes under
FLAT_RSS_KIB_PER_MIN and FLAT_FDS_PER_MIN; containerd's per containerd process, as a restart
starts a new one, after its first 30 s, while it warms up).

containerd's descriptors are of two kinds. Those a pod's containers hold (their stdio FIFOs,
the shim's log FIFO) name the pod's or container's id, and how many pods are live at a sample
swings their count by tens (16 idle, 33 with one pod of two containers): their leak is checked
exactly, by id, not by a slope. The rest (its database, log, listeners, the shims' ttrpc
connections) grow only with the live shims: their slope is fitted with the live shim count
factored out.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crinode import K8S_NAMESPACE, CRINode, netns_path, rss_kib  # noqa: E402
from warden_cri import CRIError  # noqa: E402
from soak_verdict import (  # noqa: E402,F401 (the judging names stay soak's, as test_soak_judging uses them)
    BY_DESIGN, DEADLINES, FAKE_FAULTS, FAULTS, FLAT_FDS_PER_MIN, FLAT_RSS_KIB_PER_MIN, JUDGED_WINDOW, POD_ID,
    RETRIES, SLEEPER, STALE_GRACE, WEIGHTS, plot, slope_per_minute, slope_per_minute_beside, summarize)

def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def descriptor_ids(pid):
    """(how many descriptors `pid` holds, the pod and container ids their targets name, with
    how many name each)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, {}
    named = {}
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        for found in set(POD_ID.findall(target)):
            named[found] = named.get(found, 0) + 1
    return len(fds), named


class CallGate:
    """CRI calls run side by side; a containerd restart waits for those in flight and holds new
    ones until containerd is back (a reader-writer lock)."""

    def __init__(self):
        self.condition = threading.Condition()
        self.calls = 0
        self.restarting = False

    def call(self, function, *args, **kwargs):
        return self.timed_call(function, *args, **kwargs)[0]

    def timed_call(self, function, *args, **kwargs):
        """(result, seconds the call itself took: the wait for a restart to end excluded)."""
        with self.condition:
            self.condition.wait_for(lambda: not self.restarting)
            self.calls += 1
        try:
            started = time.monotonic()
            result = function(*args, **kwargs)
            return result, time.monotonic() - started
        finally:
            with self.condition:
                self.calls -= 1
                self.condition.notify_all()

    def restart(self, node):
        with self.condition:
            self.condition.wait_for(lambda: not self.restarting)
            self.restarting = True
            self.condition.wait_for(lambda: self.calls == 0, timeout=60)
        try:
            node.restart_containerd()
        finally:
            with self.condition:
                self.restarting = False
                self.condition.notify_all()


class Soak:
    def __init__(self, node, seconds, concurrency, max_pods, seed, out, faults=tuple(FAULTS), hold=(2.0, 8.0)):
        self.node = node
        self.faults = [f for f in FAULTS if f in faults]
        self.weights = [WEIGHTS[FAULTS.index(f)] for f in self.faults]
        self.until = time.monotonic() + seconds
        self.concurrency = concurrency
        self.max_pods = max_pods
        self.hold = hold
        self.random = random.Random(seed)
        self.out = out
        self.lock = threading.Lock()
        self.gate = CallGate()
        self.started = 0
        self.pods = []
        self.samples = []
        self.live = {}  # pod id -> its containers and sandbox, from RunPodSandbox's return to RemovePodSandbox's
        self.removed = {}  # pod and container id -> (pod number, when its RemovePodSandbox returned)
        self.began = time.monotonic()
        self.done = threading.Event()

    def next_pod(self):
        with self.lock:
            if time.monotonic() >= self.until or self.started >= self.max_pods:
                return None
            self.started += 1
            return (self.started, self.random.choices(self.faults, self.weights)[0], self.random.randint(1, 3),
                    self.random.uniform(*self.hold))

    def worker(self):
        while True:
            drawn = self.next_pod()
            if drawn is None:
                return
            number, fault, containers, hold = drawn
            try:
                record = self.one_pod(number, fault, containers, hold)
            except Exception as error:  # recorded: a thread cannot fail the run itself
                record = {"pod": number, "fault": fault, "containers": containers, "errors": [f"soak: {error!r}"],
                          "left": [], "stop": None, "remove": None}
                self.clear_pod(f"soak-{number}")
            record["at"] = round(time.monotonic() - self.began, 2)
            with self.lock:
                self.pods.append(record)
                with open(os.path.join(self.out, "pods.jsonl"), "a") as file:
                    file.write(json.dumps(record) + "\n")

    def one_pod(self, number, fault, containers, hold):
        node, gate = self.node, self.gate
        record = {"pod": number, "fault": fault, "containers": containers, "errors": [], "left": []}
        handler = "warden-fake" if fault in FAKE_FAULTS else "warden"
        name = f"soak-{number}"
        pod_id, container_ids = gate.call(node.run_pod, name, handler, [(f"c{i}", SLEEPER) for i in range(containers)])
        record["id"] = pod_id
        with self.lock:
            self.live[pod_id] = containers + 1
        pod_root = node.path(handler, K8S_NAMESPACE, pod_id)
        netns = self.netns_of(pod_id)
        time.sleep(hold)  # the pod's life: it runs a while before it is stopped
        pinner = stopped = None
        if fault in ("sigstop", "restart"):
            # (restart: a wedged sandbox keeps the stop in flight long enough to restart under it)
            stopped = gate.call(node.pid_of, pod_id)
            os.kill(stopped, signal.SIGSTOP)
        elif fault in FAKE_FAULTS:
            os.makedirs(pod_root, exist_ok=True)
            with open(os.path.join(pod_root, "faults"), "w") as file:
                file.write(fault + "\n")
        elif fault == "shim-kill":
            for pid in node.shim_pids_of(pod_id):
                os.kill(pid, signal.SIGKILL)
        elif fault == "pinned-netns":
            pinner = subprocess.Popen(["nsenter", f"--net={netns}", "sleep", "1000"])

        def call(kind, function):
            """The call, retried every second as kubelet retries (10 attempts); each error
            recorded; the time of the attempt that succeeded."""
            for attempt in range(RETRIES):
                try:
                    took = gate.timed_call(function, pod_id, timeout=30)[1]
                    record.setdefault("attempts", {})[kind] = attempt + 1
                    return took
                except CRIError as error:
                    record["errors"].append(f"{kind}: {error.code.name}: {error.details[:400]}")
                    time.sleep(1)
            return None

        if fault == "restart":
            result = {}
            client = node.client  # this stop is not counted by the gate: the restart waits for the others only

            def interrupted_stop():
                started = time.monotonic()
                try:
                    client.stop_pod(pod_id, timeout=30)
                    result["took"] = time.monotonic() - started
                except CRIError as error:
                    record["errors"].append(f"stop: {error.code.name}: {error.details[:200]}")
            thread = threading.Thread(target=interrupted_stop)
            thread.start()
            time.sleep(0.3)
            gate.restart(node)
            thread.join(60)
            took = result.get("took")
            if took is None:  # interrupted by the restart: kubelet's retry, timed from the retry
                took = call("stop", lambda pod, timeout: node.client.stop_pod(pod, timeout=timeout))
        else:
            took = call("stop", lambda pod, timeout: node.client.stop_pod(pod, timeout=timeout))
        record["stop"] = took
        record["remove"] = call("remove", lambda pod, timeout: node.client.remove_pod(pod, timeout=timeout))
        with self.lock:
            self.live.pop(pod_id, None)
        if record["remove"] is not None:
            removed = time.monotonic()
            with self.lock:
                for removed_id in [pod_id, *container_ids]:
                    self.removed[removed_id] = (number, removed)

        if stopped:
            try:
                os.kill(stopped, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if pinner:
            pinner.kill()
            pinner.wait(10)
        if fault in FAKE_FAULTS:
            for leftover in ("faults", "fault-log"):
                try:
                    os.remove(os.path.join(pod_root, leftover))
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(pod_root)  # Warden removes it only when empty: the fault file was ours
            except OSError:
                pass
        record["left"] = self.left_by(pod_id, name, pod_root, netns)
        return record

    def clear_pod(self, name):
        """Stop and remove (and SIGCONT) whatever pod `name` became after the soak itself failed."""
        try:
            for pod in self.gate.call(lambda: self.node.client.pods(timeout=10)):
                if pod.metadata.name == name:
                    for pid, _, line in self.node.our_processes():
                        if pod.id in line:
                            try:
                                os.kill(pid, signal.SIGCONT)
                            except ProcessLookupError:
                                pass
                    self.gate.call(lambda: self.node.client.stop_pod(pod.id, timeout=30))
                    self.gate.call(lambda: self.node.client.remove_pod(pod.id, timeout=30))
        except Exception:
            pass

    def netns_of(self, pod_id):
        status = self.gate.call(lambda: self.node.client.pod_status(pod_id, verbose=True))
        path = netns_path(json.loads(status.info.get("info", "{}")))
        if not path:
            raise RuntimeError(f"pod {pod_id} has no network namespace")
        return path

    def left_by(self, pod_id, name, pod_root, netns, wait=5.0):
        """What this pod left: its processes, netns, runsc root, container cgroups."""
        deadline = time.monotonic() + wait
        while True:
            left = [f"process {pid} {process}" for pid, process, line in self.node.our_processes() if pod_id in line]
            left += [f"pod netns {netns}"] if os.path.exists(netns) else []
            if os.path.exists(pod_root):
                left.append(f"runsc root {pod_root}: {os.listdir(pod_root)}")
            left += [f"cgroup {path}" for path in self.node.leaked_cgroups() if f"/{name}/" in path + "/"]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def sampler(self):
        while not self.done.wait(2.0):
            self.sample()

    def sample(self, idle=False):
        node = self.node
        containerd = node.containerd.pid if node.containerd else None
        shims = node.shim_pids()
        fds, named = descriptor_ids(containerd) if containerd else (None, {})
        now = time.monotonic()
        with self.lock:
            # A removed pod's id still named by a descriptor STALE_GRACE s after its removal.
            live_containers = sum(self.live.values())
            stale = sorted({f"pod {self.removed[i][0]}, removed {now - self.removed[i][1]:.1f} s before"
                            for i in named if i in self.removed and now - self.removed[i][1] >= STALE_GRACE})
        self.samples.append({
            "t": round(now - self.began, 2),
            "containerd_pid": containerd,
            "containerd_rss_kib": rss_kib(containerd) if containerd else None,
            "containerd_fds": fds,
            "containerd_pod_fds": sum(named.values()) if containerd else None,
            "containerd_stale": stale,
            "shims": len(shims),
            "shim_rss_kib": sum(rss_kib(pid) for pid in shims),
            "shim_anon_kib": sum(rss_kib(pid, "RssAnon") for pid in shims),
            "shim_fds": sum(fd_count(pid) for pid in shims),
            "live_containers": live_containers,
            **({"idle": True} if idle else {}),
        })

    def run(self):
        self.sample(idle=True)  # before the first pod: what an idle containerd holds
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        workers = [threading.Thread(target=self.worker) for _ in range(self.concurrency)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.done.set()
        sampler.join(5)
        # A last sample once the last removal is STALE_GRACE old: every pod's descriptors gone.
        with self.lock:
            last = max((at for _, at in self.removed.values()), default=time.monotonic())
        time.sleep(max(0.0, last + STALE_GRACE - time.monotonic()))
        self.sample(idle=True)
        with open(os.path.join(self.out, "samples.jsonl"), "w") as file:
            for sample in self.samples:
                file.write(json.dumps(sample) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pods", type=int, default=400, help="at most this many pods")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", required=True, help="directory for pods.jsonl, samples.jsonl, summary.md, soak.png")
    parser.add_argument("--check", action="store_true", help="fail unless the invariants hold")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="comma-separated faults to draw from (default: all); without restart one containerd "
                             "process lives the whole run, so its memory can be followed from start to end")
    parser.add_argument("--resummarize", action="store_true",
                        help="no run: the summary and plot again from --out's pods.jsonl and samples.jsonl")
    arguments = parser.parse_args()
    faults = [f.strip() for f in arguments.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or not faults:
        parser.error(f"--faults: unknown fault(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(FAULTS)}")
    if arguments.resummarize:
        return resummarize(arguments)
    os.makedirs(arguments.out, exist_ok=True)
    for name in ("pods.jsonl", "samples.jsonl"):
        if os.path.exists(os.path.join(arguments.out, name)):
            os.remove(os.path.join(arguments.out, name))
    node = CRINode(deadlines=DEADLINES)
    try:
        node.start()
        began = time.monotonic()
        soak = Soak(node, arguments.seconds, arguments.concurrency, arguments.pods, arguments.seed, arguments.out, faults)
        soak.run()
        elapsed = time.monotonic() - began
        node_left = node.leaks()
    finally:
        try:  # kept with the results: the shims log into it, the only account of a pod that failed
            shutil.copy(node.path("containerd.log"), os.path.join(arguments.out, "containerd.log"))
        except OSError:
            pass
        node.cleanup()
    with open(os.path.join(arguments.out, "run.json"), "w") as file:
        json.dump({"seed": arguments.seed, "seconds": elapsed, "concurrency": arguments.concurrency, "node_left": node_left,
                   "containerd": os.environ.get("WARDEN_CONTAINERD_VERSION"), "runsc": os.environ.get("WARDEN_RUNSC_VERSION")}, file)
    return report(soak, node_left, elapsed, arguments)


def resummarize(arguments):
    """The summary and plot of a run made before, from what it recorded."""
    with open(os.path.join(arguments.out, "run.json")) as file:
        run = json.load(file)
    soak = Soak.__new__(Soak)
    soak.concurrency = run["concurrency"]
    with open(os.path.join(arguments.out, "pods.jsonl")) as file:
        soak.pods = [json.loads(line) for line in file]
    with open(os.path.join(arguments.out, "samples.jsonl")) as file:
        soak.samples = [json.loads(line) for line in file]
    arguments.seed = run["seed"]
    os.environ.setdefault("WARDEN_CONTAINERD_VERSION", run.get("containerd") or "")
    os.environ.setdefault("WARDEN_RUNSC_VERSION", run.get("runsc") or "")
    return report(soak, run["node_left"], run["seconds"], arguments)


def report(soak, node_left, elapsed, arguments):
    text, violations = summarize(soak, node_left, elapsed)
    header = f"seed {arguments.seed}; containerd {os.environ.get('WARDEN_CONTAINERD_VERSION', '(WARDEN_CONTAINERD_DIR or /usr/bin)')}, " \
             f"runsc {os.environ.get('WARDEN_RUNSC_VERSION', '(WARDEN_RUNSC or /usr/bin/runsc)')}"
    text = header + "\n\n" + text
    with open(os.path.join(arguments.out, "summary.md"), "w") as file:
        file.write(text + "\n")
    plotted = plot(soak, os.path.join(arguments.out, "soak.png"))
    print(text)
    print(f"\nplot: {os.path.join(arguments.out, 'soak.png') if plotted else 'none (no matplotlib)'}")
    if violations:
        print("\nINVARIANTS VIOLATED:\n" + "\n".join(f"  {v}" for v in violations[:50]), file=sys.stderr)
        return 1 if arguments.check else 0
    print("\ninvariants hold: every stop within stop_deadline + 1 s, only by-design CRI errors, nothing left, "
          "no containerd descriptor of a removed pod nor more than before the first pod, containerd and shim slopes "
          f"within their bounds where fitted over {JUDGED_WINDOW:.0f} s or more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
