"""CRI UpdateContainerResources (kubelet's in-place resize) through containerd to Warden's task
Update: with fake-runsc, which has `update` as runsc since April 2025 does, the resources reach
`runsc update` as OCI JSON; with the set's real runsc (2024-07-29 or 2022-12-19, neither has
`update`), a FailedPrecondition naming runsc's version, the container untouched. Each test ends
with the leak audit."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_cri import SLEEPER, CRITestCase  # noqa: E402
from warden_cri import CRIError, pb  # noqa: E402

MIB = 1024 * 1024


class UpdateResourcesTests(CRITestCase):
    def stop_and_remove(self, pod_id):
        self.node.client.stop_pod(pod_id, timeout=30)
        self.node.client.remove_pod(pod_id, timeout=30)
        self.assertNothingLeft()

    def test_resources_reach_runsc_update_with_fake_runsc(self):
        node, client = self.node, self.node.client
        # An empty `faults` file marks where fake-runsc keeps its fault log (what update records).
        with open(os.path.join(node.path("warden-fake"), "faults"), "w") as file:
            file.write("\n")
        log = os.path.join(node.path("warden-fake"), "fault-log")
        try:
            pod_id, (container,) = node.run_pod("resize", "warden-fake", [("app", SLEEPER)])
            client.update_resources(container, timeout=30, memory_limit_in_bytes=200 * MIB,
                                    cpu_period=100000, cpu_quota=50000, cpu_shares=512)
            with open(log) as file:
                updates = [line.split(" ", 2) for line in file.read().splitlines() if line.startswith("update ")]
            self.assertEqual([u[1] for u in updates], [container], updates)
            resources = json.loads(updates[0][2])
            self.assertEqual(resources["memory"]["limit"], 200 * MIB, resources)
            self.assertEqual((resources["cpu"]["quota"], resources["cpu"]["period"], resources["cpu"]["shares"]),
                             (50000, 100000, 512), resources)
            self.assertEqual(client.container_status(container).status.state, pb.CONTAINER_RUNNING)
            self.stop_and_remove(pod_id)
        finally:
            os.remove(os.path.join(node.path("warden-fake"), "faults"))

    def test_a_runsc_without_update_is_refused_naming_its_version(self):
        node, client = self.node, self.node.client
        pod_id, (container,) = node.run_pod("noresize", "warden", [("app", SLEEPER)])
        with self.assertRaises(CRIError) as refused:
            client.update_resources(container, timeout=30, memory_limit_in_bytes=200 * MIB)
        self.record.append(f"UpdateContainerResources with real runsc: {refused.exception.details}")
        self.assertIn("has no update command", refused.exception.details)
        self.assertIn("runsc version 0.0~20", refused.exception.details)
        self.assertEqual(client.container_status(container).status.state, pb.CONTAINER_RUNNING)
        self.assertEqual(client.exec_sync(container, ["echo", "still here"]).stdout, b"still here\n")
        self.stop_and_remove(pod_id)


if __name__ == "__main__":
    unittest.main()
