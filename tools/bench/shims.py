#!/usr/bin/env python3
"""Warden beside containerd's runc shim, both driving the same runsc through the same wrapper,
on one private containerd (scripts/bench-shims.sh sets it up and calls this). Prints a markdown
section for docs/benchmarks.md and writes the plot.

Measured, each shim in turn (interleaved where the order could favour one):
  - `ctr run --rm IMAGE ID true` latency, N runs each after a warm-up, interleaved;
  - the step timeline of one such run (perf's sched_process_exec/exit tracepoints, runsc verbs
    from the wrapper's argv log): shim start, server, runsc create/start/delete, shim delete;
  - `ctr run -d … sleep` latency and per-shim RSS / PSS / threads with 1, 10 and 50 pods at once;
  - one pod of 10 containers (io.kubernetes.cri.sandbox-id): that shim's RSS / PSS / threads;
  - SIGKILL → /tasks/exit seen by `ctr events`, beside runsc's own `kill` of such a sandbox.

usage: shims.py --ctr "CTR PREFIX" --image IMG --warden-flags "…" --runc-flags "…" --tmp DIR
                --runsc WRAPPER --warden-root DIR --runc-root DIR --plot PATH [--runs N]
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

SHIM_NAMES = {"warden": "containerd-shim-warden-v2", "runc": "containerd-shim-runc-v2"}
LABELS = {"warden": "Warden", "runc": "runc shim"}


def ms(seconds):
    return seconds * 1000.0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Bench:
    def __init__(self, args):
        self.args = args
        self.ctr_prefix = shlex.split(args.ctr)
        self.flags = {"warden": shlex.split(args.warden_flags), "runc": shlex.split(args.runc_flags)}
        self.address = self.ctr_prefix[self.ctr_prefix.index("-a") + 1]

    def ctr(self, *arguments, check=True, timeout=30):
        try:
            result = subprocess.run(self.ctr_prefix + list(arguments), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise
            # A shim that hangs is a result, not a reason to stop (the runc shim's failed task).
            return subprocess.CompletedProcess(arguments, 124, "", f"timed out after {timeout} s")
        if check and result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(arguments)}: {result.stdout}{result.stderr}")
        return result

    def timed_ctr(self, *arguments):
        start = time.monotonic()
        self.ctr(*arguments)
        return time.monotonic() - start

    # --- the shims' processes -------------------------------------------------------------
    def shim_pids(self, runtime):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if SHIM_NAMES[runtime] in cmdline and self.address in cmdline and " start" not in cmdline:
                pids.append(int(entry))
        return pids

    @staticmethod
    def memory_of(pid):
        values = {}
        try:
            with open(f"/proc/{pid}/smaps_rollup") as file:
                for line in file:
                    parts = line.split()
                    if parts and parts[0] in ("Rss:", "Pss:"):
                        values[parts[0][:-1]] = int(parts[1])
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            return None
        return values.get("Rss", 0), values.get("Pss", 0), threads

    @staticmethod
    def comm_of(pid):
        try:
            with open(f"/proc/{pid}/comm") as file:
                return file.read().strip()
        except OSError:
            return ""

    def memory(self, runtime):
        """Mean per-shim RSS and PSS (MB) and threads, and the number of shims. A Warden shim's
        spawn helper (a child named warden-spawner, same command line) is counted with its shim:
        RSS and PSS and threads are the pair's sums."""
        pids = self.shim_pids(runtime)
        helpers = [p for p in pids if self.comm_of(p) == "warden-spawner"]
        samples = []
        for pid in (p for p in pids if p not in helpers):
            own = self.memory_of(pid)
            if not own:
                continue
            for helper in helpers:
                try:
                    with open(f"/proc/{helper}/stat") as file:
                        parent = int(file.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                extra = self.memory_of(helper) if parent == pid else None
                if extra:
                    own = tuple(a + b for a, b in zip(own, extra))
            samples.append(own)
        if not samples:
            return None
        n = len(samples)
        return {"rss": sum(s[0] for s in samples) / n / 1024, "pss": sum(s[1] for s in samples) / n / 1024,
                "threads": sum(s[2] for s in samples) / n, "shims": n}

    def stop_all(self):
        tasks = self.ctr("task", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("task", "kill", "-s", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = self.ctr("task", "ls", check=False).stdout
            if "RUNNING" not in listed and "CREATED" not in listed:
                break
            time.sleep(0.1)
        for task in self.ctr("task", "ls", "-q", check=False).stdout.split():
            self.ctr("task", "rm", "-f", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "rm", container, check=False)
        time.sleep(1)

    # --- measurements ----------------------------------------------------------------------
    def run_latency(self):
        times = {"warden": [], "runc": []}
        for runtime in times:
            self.ctr("run", "--rm", *self.flags[runtime], self.args.image, f"warm-{runtime}", "true")
        for i in range(self.args.runs):
            order = ["warden", "runc"] if i % 2 == 0 else ["runc", "warden"]
            for runtime in order:
                times[runtime].append(self.timed_ctr("run", "--rm", *self.flags[runtime], self.args.image,
                                                     f"lat-{runtime}-{i}", "true"))
        return {rt: {"median": ms(statistics.median(v)), "p90": ms(percentile(v, 0.9)), "all": [ms(x) for x in v]}
                for rt, v in times.items()}

    def step_timeline(self, runtime):
        """One `ctr run --rm … true` under perf's process exec/exit tracepoints."""
        argv_log = os.path.join(self.args.tmp, "argv.log")
        perf_data = os.path.join(self.args.tmp, f"perf-{runtime}.data")
        open(argv_log, "w").close()
        command = self.ctr_prefix + ["run", "--rm", *self.flags[runtime], self.args.image, f"steps-{runtime}", "true"]
        inner = "sleep 0.3; " + " ".join(shlex.quote(c) for c in command) + "; sleep 0.5"
        recorded = subprocess.run(["perf", "record", "-q", "-e", "sched:sched_process_exec", "-e",
                                   "sched:sched_process_exit", "-a", "-o", perf_data, "--", "sh", "-c", inner],
                                  capture_output=True, text=True, timeout=60)
        if recorded.returncode != 0:
            return None
        script = subprocess.run(["perf", "script", "-F", "pid,tid,time,event,trace", "-i", perf_data],
                                capture_output=True, text=True, timeout=60)
        text_path = perf_data + ".txt"
        with open(text_path, "w") as file:
            file.write(script.stdout)
        steps = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "steps.py"), text_path, argv_log],
                               capture_output=True, text=True, timeout=60, check=True)
        return json.loads(steps.stdout)

    def pods_at_once(self, runtime, count):
        latencies = []
        for i in range(count):
            latencies.append(self.timed_ctr("run", "-d", *self.flags[runtime], self.args.image,
                                            f"p{count}-{runtime}-{i}", "sleep", "1000"))
        time.sleep(2)
        memory = self.memory(runtime)
        self.stop_all()
        return {"run_d_median": ms(statistics.median(latencies)), "memory": memory}

    def pod_of_ten(self, runtime):
        pod = f"grp-{runtime}"
        failed = None
        for i in range(10):
            kind = "sandbox" if i == 0 else "container"
            try:
                self.ctr("run", "-d", *self.flags[runtime], "--annotation", f"io.kubernetes.cri.container-type={kind}",
                         "--annotation", f"io.kubernetes.cri.sandbox-id={pod}", self.args.image,
                         pod if i == 0 else f"{pod}-{i}", "sleep", "1000")
            except subprocess.TimeoutExpired:
                # The runc shim cannot add a container to a runsc sandbox: record it, go on.
                failed = f"container {i + 1}: `ctr run -d` did not return within 30 s"
                break
            except RuntimeError as error:
                failed = f"container {i + 1}: {str(error).strip().splitlines()[-1][:100]}"
                break
        time.sleep(2)
        running = sum(1 for line in self.ctr("task", "ls").stdout.splitlines()
                      if line.startswith(pod) and "RUNNING" in line)
        memory = self.memory(runtime)
        self.stop_all()
        return {"memory": memory, "running": running, "failed": failed}

    def kill_to_exit(self, runtime, rounds=5):
        """SIGKILL of a healthy sandbox → its /tasks/exit as `ctr events` prints it."""
        events = subprocess.Popen(self.ctr_prefix + ["events"], stdout=subprocess.PIPE, text=True)
        arrivals = []
        lock = threading.Lock()

        def read():
            for line in events.stdout:
                with lock:
                    arrivals.append((time.monotonic(), line))
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        results = []
        try:
            for i in range(rounds):
                task = f"kill-{runtime}-{i}"
                self.ctr("run", "-d", *self.flags[runtime], self.args.image, task, "sleep", "1000")
                time.sleep(0.5)
                start = time.monotonic()
                self.ctr("task", "kill", "-s", "SIGKILL", task)
                seen = None
                deadline = start + 20
                while seen is None and time.monotonic() < deadline:
                    with lock:
                        seen = next((t for t, line in arrivals if t >= start and "/tasks/exit" in line
                                     and f'"{task}"' in line), None)
                    time.sleep(0.002)
                if seen is not None:
                    results.append(seen - start)
                self.ctr("task", "rm", "-f", task, check=False)
                self.ctr("containers", "rm", task, check=False)
        finally:
            events.kill()
            events.wait()
        return ms(statistics.median(results)) if results else None

    def runsc_own_kill(self, rounds=5):
        """`runsc kill ID 9` straight on a sandbox Warden started: what runsc itself takes."""
        results = []
        for i in range(rounds):
            task = f"rkill-{i}"
            self.ctr("run", "-d", *self.flags["warden"], self.args.image, task, "sleep", "1000")
            time.sleep(0.5)
            start = time.monotonic()
            subprocess.run([self.args.runsc, f"--root={self.args.warden_root}", "kill", task, "9"],
                           capture_output=True, timeout=30)
            results.append(time.monotonic() - start)
            time.sleep(0.3)
            self.ctr("task", "rm", "-f", task, check=False)
            self.ctr("containers", "rm", task, check=False)
        return ms(statistics.median(results))


def ratio(warden, runc):
    if warden is None or runc is None or runc == 0:
        return "–"
    return f"{warden / runc:.2f}"


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def step_table(timelines):
    """The step timelines side by side: start offset and duration in ms of each step."""
    lines = ["| step | Warden: starts at | Warden: takes | runc shim: starts at | runc shim: takes |",
             "|---|---|---|---|---|"]
    rows = {}
    order = []
    for runtime in ("warden", "runc"):
        counts = {}
        for step in timelines.get(runtime) or []:
            name = step["step"]
            counts[name] = counts.get(name, 0) + 1
            key = name if counts[name] == 1 else f"{name} ({counts[name]})"
            if key not in rows:
                rows[key] = {}
                order.append((step["start_ms"], key))
            rows[key][runtime] = step
    for _, key in sorted(order):
        cells = []
        for runtime in ("warden", "runc"):
            step = rows[key].get(runtime)
            if step is None:
                cells += ["–", "not run"]
            else:
                took = "lives on" if step["ms"] is None else f"{step['ms']:.0f}"
                if key == "shim server" and step["ms"] is not None:
                    took = f"{step['ms']:.0f} (whole task)"
                cells += [f"{step['start_ms']:.0f}", took]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path, counts, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (latency_axes, pss_axes) = plt.subplots(1, 2, figsize=(9, 3.6))
    for runtime, marker in (("warden", "o"), ("runc", "s")):
        latency = [results[runtime][c]["run_d_median"] for c in counts]
        pss = [(results[runtime][c]["memory"] or {}).get("pss", 0) for c in counts]
        latency_axes.plot(counts, latency, marker=marker, label=LABELS[runtime])
        pss_axes.plot(counts, pss, marker=marker, label=LABELS[runtime])
    latency_axes.set(title="ctr run -d latency (median)", xlabel="pods running", ylabel="ms", xscale="log")
    pss_axes.set(title="PSS per shim", xlabel="pods running", ylabel="MB", xscale="log")
    for axes in (latency_axes, pss_axes):
        axes.set_xticks(counts)
        axes.set_xticklabels([str(c) for c in counts])
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser()
    for name in ("--ctr", "--image", "--warden-flags", "--runc-flags", "--tmp", "--runsc", "--warden-root",
                 "--runc-root", "--plot"):
        parser.add_argument(name, required=True)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--counts", default="1,10,50")
    args = parser.parse_args()
    bench = Bench(args)
    counts = [int(c) for c in args.counts.split(",")]

    latency = bench.run_latency()
    timelines = {rt: bench.step_timeline(rt) for rt in ("warden", "runc")}
    at_once = {"warden": {}, "runc": {}}
    for count in counts:
        for runtime in ("warden", "runc"):
            at_once[runtime][count] = bench.pods_at_once(runtime, count)
    pod10 = {rt: bench.pod_of_ten(rt) for rt in ("warden", "runc")}
    kill = {rt: bench.kill_to_exit(rt) for rt in ("warden", "runc")}
    runsc_kill = bench.runsc_own_kill()
    plot(args.plot, counts, at_once)

    rows = []

    def row(label, warden, runc, digits=0, unit=""):
        rows.append(f"| {label} | {fmt(warden, digits)}{unit} | {fmt(runc, digits)}{unit} | {ratio(warden, runc)} |")

    row(f"`ctr run --rm … true`, median of {args.runs} (ms)", latency["warden"]["median"], latency["runc"]["median"])
    row(f"`ctr run --rm … true`, p90 (ms)", latency["warden"]["p90"], latency["runc"]["p90"])
    for count in counts:
        w, r = at_once["warden"][count], at_once["runc"][count]
        wm, rm = w["memory"] or {}, r["memory"] or {}
        pods = "1 pod" if count == 1 else f"{count} pods at once"
        row(f"{pods}: RSS per shim (MB)", wm.get("rss"), rm.get("rss"), 1)
        row(f"{pods}: PSS per shim (MB)", wm.get("pss"), rm.get("pss"), 1)
        row(f"{pods}: threads per shim", wm.get("threads"), rm.get("threads"), 0)
        row(f"{pods}: `ctr run -d … sleep`, median (ms)", w["run_d_median"], r["run_d_median"])
    w, r = pod10["warden"]["memory"] or {}, pod10["runc"]["memory"] or {}
    row("1 pod of 10 containers: RSS of its shim(s), MB", w.get("rss", 0) * w.get("shims", 1),
        r.get("rss", 0) * r.get("shims", 1), 1)
    row("1 pod of 10 containers: PSS of its shim(s), MB", w.get("pss", 0) * w.get("shims", 1),
        r.get("pss", 0) * r.get("shims", 1), 1)
    row("1 pod of 10 containers: threads per shim", w.get("threads"), r.get("threads"))
    def started(runtime):
        shims = (pod10[runtime]["memory"] or {}).get("shims", 0)
        note = " (" + pod10[runtime]["failed"].replace("|", "/") + ")" if pod10[runtime]["failed"] else ""
        return f"{shims} shim(s), {pod10[runtime]['running']} RUNNING{note}"
    rows.append(f"| 1 pod of 10 containers: what ran | {started('warden')} | {started('runc')} | – |")
    row("SIGKILL → `/tasks/exit` in `ctr events`, median of 5 (ms)", kill["warden"], kill["runc"])
    rows.append(f"| `runsc kill ID 9` itself on such a sandbox, median of 5 (ms) | {runsc_kill:.0f} | (same runsc) | – |")

    print("\n".join(rows))
    print()
    print("STEPS")
    print(step_table(timelines))
    print()
    print("RAW " + json.dumps({"latency": latency, "at_once": at_once, "pod10": pod10, "kill": kill,
                               "runsc_kill": runsc_kill}))


if __name__ == "__main__":
    main()
