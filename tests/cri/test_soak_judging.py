"""How the chaos soak (soak.py) judges a run, on recorded samples and pods: no node needed.
Each test builds the evidence of one kind of leak and checks that the summary names it, and
that the noise a short healthy run shows is not taken for one."""
import os
import random
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak  # noqa: E402


class Recorded:
    """What summarize reads from a Soak."""

    def __init__(self, samples, pods=()):
        self.samples = samples
        self.pods = list(pods)
        self.concurrency = 4


def healthy_pod(number):
    return {"pod": number, "fault": "none", "containers": 1, "errors": [], "left": [], "stop": 0.3, "remove": 0.05}


def samples_of(seconds, descriptors, seed=7, pid=100, idle_before=16, idle_after=15):
    """Samples every 2 s of a node whose live pod count swings at random: containerd holds
    `descriptors(t, shims, containers)` descriptors, 8 per container naming it."""
    rng = random.Random(seed)
    samples = [{"t": 0.0, "containerd_pid": pid, "containerd_rss_kib": 50000, "containerd_fds": idle_before,
                "containerd_pod_fds": 0, "containerd_stale": [], "shims": 0, "shim_rss_kib": 0, "shim_anon_kib": 0,
                "shim_fds": 0, "live_containers": 0, "idle": True}]
    t = 2.0
    while t <= seconds:
        shims = rng.randint(1, 6)
        containers = shims * rng.randint(2, 4)
        samples.append({"t": t, "containerd_pid": pid, "containerd_rss_kib": 50000 + rng.randint(-500, 500),
                        "containerd_fds": descriptors(t, shims, containers), "containerd_pod_fds": 8 * containers,
                        "containerd_stale": [], "shims": shims, "shim_rss_kib": 16000 * shims,
                        "shim_anon_kib": 1700 * shims, "shim_fds": 12 * shims + 4 * containers + rng.randint(-3, 3),
                        "live_containers": containers})
        t += 2.0
    samples.append({**samples[0], "t": t, "containerd_fds": idle_after})
    return samples


def judged(samples, seconds, pods=(healthy_pod(1),)):
    return soak.summarize(Recorded(samples, pods), [], seconds)[1]


class SoakJudgingTests(unittest.TestCase):
    def test_a_trend_is_found_beside_a_swinging_covariate(self):
        rng = random.Random(3)
        points = []
        for i in range(60):
            shims = rng.randint(1, 6)
            containers = shims * rng.randint(1, 3)
            points.append((2.0 * i, 15 + 3 * shims + 4 * containers + 0.05 * 2.0 * i, (shims, containers)))
        self.assertAlmostEqual(soak.slope_per_minute_beside(points), 3.0, places=3)  # 0.05/s
        # Without the covariates the swing hides the trend.
        self.assertGreater(abs(soak.slope_per_minute([(t, v) for t, v, _ in points]) - 3.0), 1.0)

    def test_a_healthy_short_run_passes_though_its_counts_swing(self):
        samples = samples_of(120, lambda t, shims, containers: 15 + 3 * shims + 8 * containers)
        self.assertEqual(judged(samples, 120), [])

    def test_a_descriptor_of_a_removed_pod_fails_the_run(self):
        samples = samples_of(120, lambda t, shims, containers: 15 + 3 * shims + 8 * containers)
        samples[30]["containerd_stale"] = ["pod 7, removed 5.2 s before"]
        samples[31]["containerd_stale"] = ["pod 7, removed 7.2 s before"]
        violations = judged(samples, 120)
        self.assertEqual(len(violations), 1, violations)
        self.assertIn("descriptor of pod 7", violations[0])

    def test_more_descriptors_with_no_pod_left_than_before_the_first_fails_the_run(self):
        samples = samples_of(120, lambda t, shims, containers: 15 + 3 * shims + 8 * containers, idle_after=16 + 10)
        violations = judged(samples, 120)
        self.assertEqual(len(violations), 1, violations)
        self.assertIn("26 descriptors with no pod left, 16 before the first pod", violations[0])

    def test_a_slow_descriptor_leak_fails_a_long_run_only(self):
        # One descriptor leaked every 4 s (15 a minute), not naming a pod (a socket, say).
        leaking = lambda t, shims, containers: 15 + 3 * shims + 8 * containers + int(t / 4)  # noqa: E731
        long_run = judged(samples_of(600, leaking), 600)
        self.assertTrue(any("naming no pod" in v for v in long_run), long_run)
        # Over 2 minutes a slope is not judged (the idle count is, and catches this one).
        short_run = judged(samples_of(120, leaking, idle_after=15 + 30), 120)
        self.assertFalse(any("naming no pod" in v for v in short_run), short_run)
        self.assertTrue(any("with no pod left" in v for v in short_run), short_run)

    def test_a_long_healthy_run_passes(self):
        self.assertEqual(judged(samples_of(600, lambda t, shims, containers: 15 + 3 * shims + 8 * containers), 600), [])


class SoakSamplingTests(unittest.TestCase):
    """The sampler's side of the descriptor check, on this process standing in for containerd:
    a descriptor whose target names a removed pod's id is reported once the grace has passed."""

    class Node:
        class Containerd:
            pid = os.getpid()

        containerd = Containerd()

        def shim_pids(self):
            return []

    def test_a_descriptor_naming_a_removed_pod_is_sampled_as_stale(self):
        removed_id, fresh_id = "a" * 64, "b" * 64
        with tempfile.TemporaryDirectory() as directory:
            held = [open(os.path.join(directory, f"{i}-stdout"), "w") for i in (removed_id, fresh_id)]
            try:
                fds, named = soak.descriptor_ids(os.getpid())
                self.assertEqual(named, {removed_id: 1, fresh_id: 1})
                self.assertGreaterEqual(fds, 2)
                sampler = soak.Soak.__new__(soak.Soak)
                sampler.node, sampler.lock, sampler.samples, sampler.live = self.Node(), threading.Lock(), [], {}
                sampler.began = time.monotonic()
                # Pod 7 removed longer ago than the grace, pod 8 just now.
                sampler.removed = {removed_id: (7, time.monotonic() - soak.STALE_GRACE - 1), fresh_id: (8, time.monotonic())}
                sampler.sample()
            finally:
                for file in held:
                    file.close()
        sample = sampler.samples[-1]
        self.assertEqual([s.split(",")[0] for s in sample["containerd_stale"]], ["pod 7"], sample)
        self.assertEqual(sample["containerd_pod_fds"], 2)


if __name__ == "__main__":
    unittest.main()
