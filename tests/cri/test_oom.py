"""OOM kills through CRI: a pod sandbox the kernel's OOM killer kills (fake-runsc's
`oom-kill-sandbox`: the sandbox process lowers its own memory cgroup's limit and allocates past
it, a real kernel OOM kill) shows its containers EXITED with reason OOMKilled and exit code 137,
which containerd's CRI reports only when the shim published /tasks/oom for the container before
its exit; the shim's crash record says oom. Ends with the leak audit."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_cri import SLEEPER, CRITestCase  # noqa: E402
from warden_cri import pb  # noqa: E402


class OOMTests(CRITestCase):
    def test_a_sandbox_the_kernel_oom_kills_reports_its_containers_oomkilled(self):
        node, client = self.node, self.node.client
        trigger = os.path.join(node.path("warden-fake"), "oom-now")
        node.set_fault("warden-fake", "oom-kill-sandbox")
        try:
            pod_id, (container,) = node.run_pod("oom", "warden-fake", [("app", SLEEPER)])
            self.assertEqual(client.container_status(container).status.state, pb.CONTAINER_RUNNING)
            open(trigger, "w").close()
            deadline = time.monotonic() + 20
            status = client.container_status(container).status
            while status.state != pb.CONTAINER_EXITED and time.monotonic() < deadline:
                time.sleep(0.1)
                status = client.container_status(container).status
            with open(os.path.join(node.path("warden-fake"), "fault-log")) as file:
                fault_log = file.read()
            self.assertEqual(status.state, pb.CONTAINER_EXITED, fault_log)
            self.assertEqual((status.reason, status.exit_code), ("OOMKilled", 137), fault_log)
            self.record.append(f"OOM-killed sandbox: container {status.reason} exit {status.exit_code}; "
                               f"{fault_log.strip().splitlines()[-1]}")
            client.stop_pod(pod_id, timeout=30)
            client.remove_pod(pod_id, timeout=30)
            # The shim also recorded it as the sandbox's crash (reason oom), kept for
            # `warden doctor` after the shim is gone: checked, then removed for the audit.
            record = os.path.join(node.path("metrics"), f"k8s.io_{pod_id}.crash.json")
            with open(record) as file:
                crash = json.load(file)
            os.remove(record)
            self.assertEqual((crash["reason"], crash["process"]), ("oom", "runsc-sandbox"), crash)
            self.assertIn("OOM killer", crash["detail"])
        finally:
            node.set_fault("warden-fake", "")
            for path in [trigger, os.path.join(node.path("warden-fake"), "fault-log")]:
                if os.path.exists(path):
                    os.remove(path)
        self.assertNothingLeft()


if __name__ == "__main__":
    unittest.main()
