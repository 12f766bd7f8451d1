"""containerd 2.3, the current line: what it asks of a shim beyond 2.2 (the bootstrap protocol,
`-info`), read from its own log over a CRI pod lifecycle; and an in-place upgrade from 2.1 with
pods running in both sandbox modes."""
import base64
import json
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crinode import CONTAINERD_DIR, CRINode, containerd_version  # noqa: E402
from test_cri import DELETE_DEADLINE, SLACK, SLEEPER, STOP_BOUND, CRITestCase, timed  # noqa: E402
from warden_cri import pb  # noqa: E402

ON_23 = containerd_version() >= (2, 3, 0)
# The containerd the upgrade starts from (scripts/test.sh: the `current` set's, 2.1).
UPGRADE_FROM = os.environ.get("WARDEN_UPGRADE_FROM_CONTAINERD_DIR", "")


def errors_about_warden(log, ids):
    """containerd's error and warning lines that concern Warden: the shim, its runtime type,
    its `-info`, or one of the pods' and containers' ids."""
    words = ["warden", "shim", "runtime info", "bootstrap"] + list(ids)
    return [line for line in log.splitlines()
            if re.search(r"level=(error|warning|fatal|panic)", line) and any(word in line for word in words)]


@unittest.skipUnless(ON_23, "containerd before 2.3 has no bootstrap protocol and does not ask -info")
class Containerd23Tests(CRITestCase):
    def test_a_pod_lifecycle_in_both_modes_leaves_no_error_about_warden(self):
        """A pod of two containers, an exec, a stop and a removal under `warden` and
        `warden-shim`: containerd 2.3.4's log has no error or warning about Warden (it logged
        `failed to load runtime info … unknown flag -info` on every run before -info)."""
        node, client = self.node, self.node.client
        before = len(node.log_text())
        ids = []
        for handler in ["warden", "warden-shim"]:
            pod_id, containers = node.run_pod(f"log-{handler}", handler, [("first", SLEEPER), ("second", SLEEPER)])
            ids += [pod_id] + containers
            self.assertEqual(client.exec_sync(containers[1], ["echo", "hi"]).stdout, b"hi\n")
            if handler == "warden-shim":
                # The pod's spec in containerd's sandbox store: the one Warden's StartSandbox
                # returns (2.3 keeps it; empty before, and NRI logged errors over it).
                stored = json.loads(node.ctr("sandboxes", "info", pod_id).stdout)["Spec"]
                self.assertEqual(stored["type_url"], "types.containerd.io/opencontainers/runtime-spec/1/Spec")
                self.assertEqual(json.loads(base64.b64decode(stored["value"]))["hostname"], f"log-{handler}")
            _, took = timed(client.stop_pod, pod_id, timeout=30)
            self.assertLess(took, STOP_BOUND)
            client.remove_pod(pod_id, timeout=30)
        log = node.log_text()[before:]
        self.assertIn("connecting to shim", log)  # the log is containerd's, at info level
        errors = errors_about_warden(log, ids)
        self.assertEqual(errors, [], "containerd's log:\n" + "\n".join(errors))
        self.assertNothingLeft()


@unittest.skipUnless(ON_23 and UPGRADE_FROM, "needs containerd 2.3 under test and WARDEN_UPGRADE_FROM_CONTAINERD_DIR "
                     "(scripts/test.sh sets it to the `current` set's containerd on `next`)")
class UpgradeTests(CRITestCase):
    """containerd replaced in place (same root, state and config, the binary swapped) while a pod
    of two runs under each sandbox mode, as a node's package upgrade does."""

    @classmethod
    def setUpClass(cls):
        # The config an operator of 2.1 has: shim handlers without options (2.1 fails them).
        cls.node = CRINode(containerd_dir=UPGRADE_FROM, shim_options=False).start()

    def test_pods_of_both_modes_survive_an_upgrade_from_2_1_and_a_wedged_stop_keeps_its_deadline(self):
        node = self.node
        old = node.ctr("version").stdout
        pods = {}
        for handler in ["warden", "warden-shim"]:
            pods[handler] = node.run_pod(f"upgrade-{handler}", handler, [("app", SLEEPER), ("side", SLEEPER)])
        shims = node.shim_pids()
        node.stop_containerd()
        node.containerd_dir = CONTAINERD_DIR
        node.start(import_images=False)
        client = node.client
        self.assertNotEqual(node.ctr("version").stdout, old)
        self.assertIn(".".join(map(str, containerd_version())), node.ctr("version").stdout)
        self.assertEqual(node.shim_pids(), shims, "the shims of 2.1 still serve the pods")
        for handler, (pod_id, containers) in pods.items():
            self.assertEqual(client.pod_status(pod_id).status.state, pb.SANDBOX_READY, handler)
            self.assertEqual(self.states(containers), [pb.CONTAINER_RUNNING] * 2, handler)
            reply = client.exec_sync(containers[1], ["sh", "-c", "echo after the upgrade; exit 4"])
            self.assertEqual((reply.stdout, reply.exit_code), (b"after the upgrade\n", 4), handler)
        # A pod started after the upgrade, beside them, in the shim mode.
        fresh_id, _ = node.run_pod("upgrade-fresh", "warden-shim", [("app", SLEEPER)])
        for handler, (pod_id, containers) in pods.items():
            os.kill(node.sandbox_pid_of(pod_id), signal.SIGSTOP)  # wedged under the new containerd
            _, took = timed(client.stop_pod, pod_id, timeout=30)
            self.assertLess(took, STOP_BOUND, handler)
            self.assertEqual(self.states(containers), [pb.CONTAINER_EXITED] * 2, handler)
            _, took = timed(client.remove_pod, pod_id, timeout=30)
            self.assertLess(took, DELETE_DEADLINE + SLACK, handler)
        client.stop_pod(fresh_id, timeout=30)
        client.remove_pod(fresh_id, timeout=30)
        self.assertEqual([p.id for p in client.pods()], [])
        self.assertNothingLeft()
