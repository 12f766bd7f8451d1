"""How the chaos soak (soak.py) judges and reports a run: the faults and their bounds, the
CRI errors a fault makes by design, slopes fitted over the samples, the summary with its
violations, and the plot. Pure: recorded samples and pods in, text out (test_soak_judging.py
builds the evidence of each leak and checks it is named)."""
import os
import re

FAULTS = ["none", "sigstop", "hang-kill", "hang-delete", "shim-kill", "restart", "pinned-netns"]
# A containerd restart stops every pod's calls for seconds and starts containerd afresh (its
# memory too): drawn a quarter as often as the others, so that containerd runs long enough
# between restarts for its slopes to mean something.
WEIGHTS = [1, 1, 1, 1, 1, 0.25, 1]
FAKE_FAULTS = {"hang-kill", "hang-delete"}
DEADLINES = {"runsc_call_timeout": "2s", "kill_grace": "1s", "stop_deadline": "5s", "delete_deadline": "5s"}
STOP_DEADLINE = 5.0
STOP_BOUND = STOP_DEADLINE + 1.0
SLEEPER = ["sleep", "100000"]
# CRI errors a fault makes by design: (fault, call, text in the message). Only these may appear.
BY_DESIGN = [
    # The StopPodSandbox in flight when containerd goes away loses its connection (kubelet
    # retries it, as the soak does).
    ("restart", "stop", "UNAVAILABLE"),
    ("restart", "stop", "CANCELLED"),
    # With the shim SIGKILLed, containerd 2.x's CRI fails its first cleanup of each container
    # ("failed to delete task: ttrpc: closed": it asks the dead shim) and retries it after its
    # 1 s backoff; until then the container is still running in CRI's store, and a
    # RemovePodSandbox in between is refused. The retry a second later succeeds. Nothing of the
    # shim's is involved: it is dead; containerd runs `containerd-shim-warden-v2 delete`.
    ("shim-kill", "remove", "failed to set removing state"),
    # The same first cleanup failing on the sandbox's task, when RemovePodSandbox deletes it.
    ("shim-kill", "remove", "failed to delete task: ttrpc: closed"),
]
RETRIES = 10
# containerd (Go) grows its heap for a while after it starts and within a restart's lifetime
# here (about 1.7 MiB/min after its first 30 s in the 13-minute run, back to the same ~55 MiB
# at each restart): the bounds catch a leak of the size a per-pod one would have, not that.
FLAT_RSS_KIB_PER_MIN = 4096
# (A leak of one descriptor per pod would grow by the pod rate, about 30 a minute here.)
FLAT_FDS_PER_MIN = 10
# Over a short run (the 2-minute check) a slope measures how many pods happened to be live and
# where containerd's heap was in its growth, not a leak: slopes are judged over 5 minutes or
# more of samples; a short run judges descriptors exactly instead (by pod id, and containerd's
# count with no pod left against its count before the first, within IDLE_FDS_SLACK).
JUDGED_WINDOW = 300.0
IDLE_FDS_SLACK = 3
# How long containerd may take to close a removed pod's descriptors.
STALE_GRACE = 5.0
POD_ID = re.compile(r"[0-9a-f]{64}")
# Shims' anonymous memory, not RSS: a shim's file pages depend on when it last settled.
FLAT_SHIM_ANON_KIB_PER_MIN = 512
FLAT_SHIM_FDS_PER_MIN = 2


def slope_per_minute(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    points = [(t, v) for t, v in points if v is not None]
    if len(points) < 3:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def slope_per_minute_beside(points):
    """Least-squares slope per minute of (seconds, value, covariates) points, fitted as
    value = a + b·t + Σ cᵢ·covariateᵢ: what grows with time once the covariates' own effect
    (how many pods or containers are live) is factored out."""
    points = [(t, v, list(c)) for t, v, c in points if v is not None and None not in c]
    columns = 1 + (len(points[0][2]) if points else 0)
    if len(points) < columns + 3:
        return slope_per_minute([(t, v) for t, v, _ in points])
    rows = [[t, *c] for t, _, c in points]
    means = [sum(r[i] for r in rows) / len(rows) for i in range(columns)]
    mean_v = sum(v for _, v, _ in points) / len(points)
    x = [[r[i] - means[i] for i in range(columns)] for r in rows]
    y = [v - mean_v for _, v, _ in points]
    # Normal equations (XᵀX) b = Xᵀy, by Gaussian elimination; a covariate that never changes
    # (or moves in step with another) leaves a zero pivot and is dropped.
    a = [[sum(r[i] * r[j] for r in x) for j in range(columns)] + [sum(r[i] * v for r, v in zip(x, y))]
         for i in range(columns)]
    scale = max(a[i][i] for i in range(columns)) or 1.0
    solution = [0.0] * columns
    used = []
    for i in range(columns):
        pivot = max(range(i, columns), key=lambda k: abs(a[k][i]))
        if abs(a[pivot][i]) < 1e-9 * scale:
            continue
        a[i], a[pivot] = a[pivot], a[i]
        for k in range(columns):
            if k != i and a[k][i]:
                factor = a[k][i] / a[i][i]
                a[k] = [ak - factor * ai for ak, ai in zip(a[k], a[i])]
        used.append(i)
    for i in used:
        solution[i] = a[i][columns] / a[i][i]
    return 60 * solution[0] if 0 in used else 0.0


def incarnation_slope(samples, value, warmup=30.0, least=30.0, beside=None):
    """containerd's slope of `value(sample)`, per minute, over each containerd process of the
    run (a restart starts a new one, smaller), its first `warmup` seconds left out, only those
    with `least` seconds of samples after that: (the mean weighted by duration or None, the
    seconds it spans). With `beside(sample)`, the covariates' effect is factored out of each fit."""
    by_pid = {}
    for sample in samples:
        by_pid.setdefault(sample["containerd_pid"], []).append(sample)
    weighted, total = 0.0, 0.0
    for group in by_pid.values():
        start = group[0]["t"]
        kept = [(s["t"], value(s), beside(s) if beside else ()) for s in group
                if s["t"] - start >= warmup and value(s) is not None]
        if len(kept) < 3 or kept[-1][0] - kept[0][0] < least:
            continue
        span = kept[-1][0] - kept[0][0]
        weighted += (slope_per_minute_beside(kept) if beside else slope_per_minute([(t, v) for t, v, _ in kept])) * span
        total += span
    return (weighted / total if total else None), total


def other_descriptors(sample):
    """containerd's descriptors that name no pod or container (None in runs recorded before
    they were told apart)."""
    if sample.get("containerd_fds") is None or sample.get("containerd_pod_fds") is None:
        return None
    return sample["containerd_fds"] - sample["containerd_pod_fds"]


def containerd_late_slope(samples, least=300.0):
    """containerd's RSS slope (KiB/min) over the second half of its longest-lived process, if
    that ran `least` s: Go grows its heap for minutes after a start, so a leak shows as a slope
    that stays once that growth is over."""
    by_pid = {}
    for sample in samples:
        by_pid.setdefault(sample["containerd_pid"], []).append(sample)
    longest = max(by_pid.values(), key=lambda g: g[-1]["t"] - g[0]["t"], default=[])
    if not longest or longest[-1]["t"] - longest[0]["t"] < least:
        return None
    middle = (longest[0]["t"] + longest[-1]["t"]) / 2
    return slope_per_minute([(s["t"], s["containerd_rss_kib"]) for s in longest
                             if s["t"] >= middle and s["containerd_rss_kib"] is not None])


def containerd_plateaus(samples, least=60.0):
    """containerd's RSS (MiB) at the last sample of each of its processes that ran `least` s."""
    by_pid = {}
    for sample in samples:
        by_pid.setdefault(sample["containerd_pid"], []).append(sample)
    return [group[-1]["containerd_rss_kib"] / 1024 for group in by_pid.values()
            if group[-1]["t"] - group[0]["t"] >= least and group[-1]["containerd_rss_kib"]]


def unexpected_errors(pod):
    return [error for error in pod["errors"]
            if not any(pod["fault"] == fault and error.startswith(call + ":") and text in error
                       for fault, call, text in BY_DESIGN)]


def summarize(soak, node_left, seconds):
    pods, samples = soak.pods, soak.samples
    steady = [s for s in samples if s["t"] >= seconds / 5]
    steady_span = steady[-1]["t"] - steady[0]["t"] if steady else 0.0
    # name -> (slope or None, the seconds of samples it was fitted over)
    slopes = {
        "containerd RSS (KiB/min)": incarnation_slope(samples, lambda s: s["containerd_rss_kib"]),
        "containerd descriptors, all (/min)": incarnation_slope(samples, lambda s: s["containerd_fds"]),
        "containerd descriptors naming no pod, live shims factored out (/min)":
            incarnation_slope(samples, other_descriptors, beside=lambda s: (s["shims"],)),
        "containerd RSS, second half of its longest process (KiB/min)": (containerd_late_slope(samples), 300.0),
        "shim anonymous memory per shim (KiB/min)":
            (slope_per_minute([(s["t"], s["shim_anon_kib"] / s["shims"]) for s in steady if s["shims"] and "shim_anon_kib" in s]),
             steady_span),
        "shim descriptors, live shims and containers factored out (/min)":
            (slope_per_minute_beside([(s["t"], s["shim_fds"], (s["shims"], s["live_containers"]))
                                      for s in steady if s["shims"] and "live_containers" in s]), steady_span),
    }
    lines = [f"{len(pods)} pods in {seconds:.0f} s at concurrency {soak.concurrency}", "",
             "| fault | pods | stop median (s) | stop max (s) | remove max (s) | CRI errors (by design) | CRI errors (other) | pods leaving something |",
             "|---|---|---|---|---|---|---|---|"]
    for fault in FAULTS:
        group = [p for p in pods if p["fault"] == fault]
        if not group:
            continue
        stops = sorted(p["stop"] for p in group if p["stop"] is not None)
        removes = [p["remove"] for p in group if p["remove"] is not None]
        other = sum(len(unexpected_errors(p)) for p in group)
        total = sum(len(p["errors"]) for p in group)
        lines.append(f"| {fault} | {len(group)} | {stops[len(stops) // 2] if stops else float('nan'):.2f} | "
                     f"{max(stops) if stops else float('nan'):.2f} | {max(removes) if removes else float('nan'):.2f} | "
                     f"{total - other} | {other} | {sum(1 for p in group if p['left'])} |")
    plateaus = containerd_plateaus(samples)
    if plateaus:
        lines += ["", "containerd RSS at the end of each of its processes that ran 60 s or more (MiB, in order): "
                  + ", ".join(f"{v:.1f}" for v in plateaus)]
    lines += ["", "Slopes (containerd: per containerd process, its first 30 s left out; shims: after the first "
              f"fifth of the run; judged only when fitted over {JUDGED_WINDOW:.0f} s or more): "
              + "; ".join(f"{k} {'n/a' if v is None else f'{v:+.1f}'}{'' if v is None or span >= JUDGED_WINDOW else ' (not judged)'}"
                          for k, (v, span) in slopes.items())]
    counts = {}
    for p in pods:
        for error in p["errors"]:
            key = (p["fault"], re.sub(r"[0-9a-f]{64}", "<id>", error))
            counts[key] = counts.get(key, 0) + 1
    if counts:
        lines += ["", "CRI errors seen, by fault and message (ids as <id>):"]
        lines += [f"- {n}× {fault}: {message}" for (fault, message), n in sorted(counts.items())]
    lines += ["", f"Left by the node at the end: {node_left or 'nothing'}"]
    checked = [s for s in samples if "containerd_stale" in s]
    if checked:
        held = sorted({pod.split(",")[0] for s in checked for pod in s["containerd_stale"]}, key=lambda p: int(p.split()[1]))
        last = checked[-1]
        lines += [f"containerd descriptors naming a pod {STALE_GRACE:.0f} s after its removal, over {len(checked)} samples: "
                  f"{', '.join(held) if held else 'none'}; at the end {last['containerd_fds']} descriptors, "
                  f"{last['containerd_pod_fds']} naming a pod"
                  + (f" ({checked[0]['containerd_fds']} before the first pod)" if checked[0].get("idle") else "")]
    violations = []
    for p in pods:
        if p["stop"] is None or p["stop"] > STOP_BOUND:
            violations.append(f"pod {p['pod']} ({p['fault']}): stop {p['stop']}")
        if p["remove"] is None:
            violations.append(f"pod {p['pod']} ({p['fault']}): not removed")
        violations += [f"pod {p['pod']} ({p['fault']}): {e}" for e in unexpected_errors(p)]
        violations += [f"pod {p['pod']} ({p['fault']}) left {x}" for x in p["left"]]
    violations += [f"node left {x}" for x in node_left]
    stale = {}
    for s in samples:
        for pod in s.get("containerd_stale", []):
            stale.setdefault(pod.split(",")[0], (s["t"], pod))
    violations += [f"containerd held a descriptor of {pod} at {t:.0f} s into the run" for t, pod in stale.values()]
    for key, bound in (("containerd RSS (KiB/min)", FLAT_RSS_KIB_PER_MIN),
                       ("containerd descriptors naming no pod, live shims factored out (/min)", FLAT_FDS_PER_MIN),
                       ("shim anonymous memory per shim (KiB/min)", FLAT_SHIM_ANON_KIB_PER_MIN),
                       ("shim descriptors, live shims and containers factored out (/min)", FLAT_SHIM_FDS_PER_MIN)):
        value, span = slopes[key]
        if value is not None and span >= JUDGED_WINDOW and value > bound:
            violations.append(f"{key}: {value:+.1f}, more than {bound}")
    idle = [s for s in samples if s.get("idle")]
    if len(idle) == 2 and None not in (idle[0]["containerd_fds"], idle[1]["containerd_fds"]) \
            and idle[1]["containerd_fds"] > idle[0]["containerd_fds"] + IDLE_FDS_SLACK:
        violations.append(f"containerd holds {idle[1]['containerd_fds']} descriptors with no pod left, "
                          f"{idle[0]['containerd_fds']} before the first pod")
    return "\n".join(lines), violations


def plot(soak, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (stops, memory, descriptors) = plt.subplots(1, 3, figsize=(16, 4.5))
    faults = [f for f in FAULTS if any(p["fault"] == f and p["stop"] is not None for p in soak.pods)]
    stops.boxplot([[p["stop"] for p in soak.pods if p["fault"] == f and p["stop"] is not None] for f in faults],
                  labels=faults, showfliers=True)
    stops.axhline(STOP_BOUND, color="red", linestyle="--", label="stop_deadline + 1 s")
    stops.set_ylabel("StopPodSandbox (s)")
    stops.set_title("stop time by fault")
    stops.tick_params(axis="x", rotation=30)
    stops.legend()
    t = [s["t"] / 60 for s in soak.samples]
    memory.plot(t, [(s["containerd_rss_kib"] or 0) / 1024 for s in soak.samples], label="containerd")
    memory.plot(t, [s["shim_rss_kib"] / s["shims"] / 1024 if s["shims"] else None for s in soak.samples], label="per shim")
    memory.set_xlabel("minutes")
    memory.set_ylabel("RSS (MiB)")
    memory.set_title("memory")
    memory.legend()
    descriptors.plot(t, [s["containerd_fds"] for s in soak.samples], label="containerd")
    if any(other_descriptors(s) is not None for s in soak.samples):
        descriptors.plot(t, [other_descriptors(s) for s in soak.samples], label="containerd, naming no pod")
    descriptors.plot(t, [s["shim_fds"] / s["shims"] if s["shims"] else None for s in soak.samples], label="per shim")
    descriptors.set_xlabel("minutes")
    descriptors.set_ylabel("open descriptors")
    descriptors.set_title("descriptors")
    descriptors.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return True
