"""The critest runner's judging (tests/critest/run_critest.py), with no node: ginkgo's JSON
report read per spec, a failure with no reason in known_failures.py counted as unexplained
(what fails the run), a baseline handler's failures measured but not judged, and a reason
whose spec passes reported as stale."""
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "critest"))

import known_failures  # noqa: E402
import run_critest  # noqa: E402


def report(*specs):
    """A ginkgo JSON report with (hierarchy, leaf, state, message) specs."""
    return [{"SpecReports": [
        {"LeafNodeType": "BeforeSuite", "State": "passed"},
        *[{"LeafNodeType": "It", "ContainerHierarchyTexts": hierarchy, "LeafNodeText": leaf, "State": state,
           "RunTime": 1_500_000_000, "Failure": {"Message": message, "Location": {"FileName": "/x/util.go", "LineNumber": 9}}}
          for hierarchy, leaf, state, message in specs]]}]


class CritestJudgingTests(unittest.TestCase):
    def parse(self, data):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(data, file)
        try:
            return run_critest.parse_report(file.name)
        finally:
            os.remove(file.name)

    def test_each_it_is_one_spec_with_its_outcome(self):
        specs = self.parse(report(
            (["[k8s.io] Streaming", "runtime should support streaming interfaces"], "runtime should support attach", "passed", ""),
            (["[k8s.io] Container OOM"], "should terminate with exitCode 137 and reason OOMKilled", "failed", "timed out"),
            (["[k8s.io] Image Manager"], "should pull", "skipped", ""),
            (["[k8s.io] Networking"], "port mapping", "timedout", "deadline")))
        self.assertEqual([(name, outcome) for name, outcome, _, _ in specs], [
            ("[k8s.io] Streaming runtime should support streaming interfaces runtime should support attach", "pass"),
            ("[k8s.io] Container OOM should terminate with exitCode 137 and reason OOMKilled", "fail"),
            ("[k8s.io] Image Manager should pull", "skip"),
            ("[k8s.io] Networking port mapping", "fail")])
        self.assertEqual(specs[1][2], 1.5)
        self.assertIn("timed out (util.go:9)", specs[1][3])

    def test_a_failure_without_a_reason_is_unexplained(self):
        """Warden's own failures have no entry: the tty exec of issue 29 would be one."""
        spec = "[k8s.io] Streaming runtime should support exec with tty=true and stdin=true [Conformance]"
        self.assertIsNone(known_failures.reason_for(spec, "warden", "containerd 2.1.9 runsc 0.0~20240729.0"))
        self.assertIsNone(known_failures.reason_for(spec, "warden-shim", "containerd 2.3.4 runsc 0.0~20240729.0"))

    def test_a_runsc_2022_reason_does_not_excuse_runsc_2024(self):
        spec = "[k8s.io] Security Context NamespaceOption runtime should support PodPID"
        self.assertIsNotNone(known_failures.reason_for(spec, "warden", "containerd 1.6.20 runsc 0.0~20221219.0"))
        self.assertIsNone(known_failures.reason_for(spec, "warden", "containerd 2.1.9 runsc 0.0~20240729.0"))

    def test_every_reason_names_whose_it_is(self):
        for pattern, _, _, reason in known_failures.KNOWN_FAILURES:
            self.assertRegex(reason, r"^(gVisor|test network|containerd): ", pattern)
            self.assertNotIn("Warden:", reason)
        for pattern, _, _, why in known_failures.SKIPPED_SPECS:
            self.assertRegex(why, r"^(gVisor|test network|containerd): ", pattern)

    def test_a_reason_applies_to_its_handlers_and_versions_only(self):
        spec = "[k8s.io] Security Context NamespaceOption runtime should support HostNetwork is true"
        self.assertIsNotNone(known_failures.reason_for(spec, "warden", "containerd 1.6.20 runsc 0.0~20221219.0"))
        re = known_failures.re
        skipped = [p for p, handlers, releases, _ in known_failures.SKIPPED_SPECS
                   if re.search(handlers, "warden-shim") and re.search(releases, "containerd 2.1.9 runsc 0.0~20240729.0")]
        self.assertTrue(any(re.search(p, spec) for p in skipped))
        self.assertFalse([p for p, handlers, releases, _ in known_failures.SKIPPED_SPECS
                          if re.search(handlers, "warden-shim") and re.search(releases, "containerd 2.3.4 runsc 0.0~20240729.0")])
        self.assertFalse([p for p, handlers, _, _ in known_failures.SKIPPED_SPECS if known_failures.re.search(handlers, "warden")
                          and not handlers.startswith("^warden-shim")])

    def test_a_reason_whose_spec_passes_is_stale(self):
        original = run_critest.release
        run_critest.release = lambda: "containerd 2.1.9 runsc 0.0~20240729.0"
        try:
            specs = [("[k8s.io] PodSandbox runtime should support sysctls should support safe sysctls", "pass", 1.0, ""),
                     ("[k8s.io] PodSandbox runtime should support basic operations", "pass", 1.0, "")]
            self.assertEqual(run_critest.stale_reasons(specs, "warden"), [specs[0][0]])
        finally:
            run_critest.release = original


if __name__ == "__main__":
    unittest.main()
