"""Per-container stats through CRI ContainerStats (what `kubectl top pod --containers` shows):
two containers of one pod using very different memory report their own, from the sandbox
(fake-runsc's control server reports each container's processes; real runsc's sentry
accounts each container), not one figure for the pod. Ends with the leak audit."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_cri import SLEEPER, CRITestCase  # noqa: E402

MIB = 1 << 20
# ~64 MiB (64 Ki lines of 1000 bytes) held by `sort` (in memory: -S, else GNU sort spills to
# files), which reads all its input before it writes, then blocks on a reader that never
# reads: its memory is the container's. No /dev/zero: fake-runsc's chroot has no /dev.
HOG = ["sh", "-c", f"yes {'a' * 999} | head -c 67108864 | sort -S 128M | sleep 100000"]


class ContainerStatsTests(CRITestCase):
    def stats_of_a_pod_of_two(self, handler):
        node, client = self.node, self.node.client
        pod_id, (small, big) = node.run_pod(f"stats-{handler}", handler, [("small", SLEEPER), ("big", HOG)])
        try:
            deadline = time.monotonic() + 30
            while True:
                small_stats, big_stats = client.container_stats(small, timeout=10), client.container_stats(big, timeout=10)
                small_memory = small_stats.memory.working_set_bytes.value or small_stats.memory.usage_bytes.value
                big_memory = big_stats.memory.working_set_bytes.value or big_stats.memory.usage_bytes.value
                if big_memory >= 48 * MIB or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            self.record.append(f"{handler}: ContainerStats memory small {small_memory / MIB:.1f} MiB, big {big_memory / MIB:.1f} MiB; "
                               f"cpu small {small_stats.cpu.usage_core_nano_seconds.value} ns, big {big_stats.cpu.usage_core_nano_seconds.value} ns")
            self.assertEqual((small_stats.attributes.id, big_stats.attributes.id), (small, big))
            self.assertGreaterEqual(big_memory, 48 * MIB, f"big: {big_stats}")
            self.assertLess(small_memory, 16 * MIB, f"small: {small_stats}")
        finally:
            client.stop_pod(pod_id, timeout=30)
            client.remove_pod(pod_id, timeout=30)
        self.assertNothingLeft()

    def test_two_containers_of_a_fake_sandbox_report_their_own_memory(self):
        self.stats_of_a_pod_of_two("warden-fake")

    def test_two_containers_of_a_real_sandbox_report_their_own_memory(self):
        if os.environ.get("WARDEN_RUNSC_VERSION", "").startswith("0.0~2022"):
            self.skipTest("runsc 2022-12-19's sentry accounts memory per sandbox only: every container of a pod "
                          "reports the pod's total (runsc/boot/events.go); runsc 2024 accounts each container")
        self.stats_of_a_pod_of_two("warden")


if __name__ == "__main__":
    unittest.main()
