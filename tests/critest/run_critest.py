"""Runs cri-tools' critest (the CRI validation suite kubelet's runtimes are held to) against a
private CRI node (tests/cri/crinode.py) with one of Warden's runtime handlers, its images served
offline (registry.py), and judges the result:

  - every spec critest runs passes, or fails for a reason listed in known_failures.py (gVisor's,
    the test network's, containerd's: never Warden's); an unlisted failure fails the run;
  - after the suite, the pods critest abandoned (on a failed spec) are listed, counted and
    removed, and the node's leak audit is clean of everything Warden owns.

    run_critest.py --handler warden|warden-shim|runc-runsc [--results FILE] [--focus REGEX]

Results: one JSON line per spec in --results ({"spec", "handler", "outcome": pass|fail|skip,
"seconds", "reason", "detail"}) and a summary line ({"summary": …}); scripts/conformance-table.py
makes the README's table from them. critest comes from ../shared/tools/cri-tools-*/critest
(beside the checkout) or $CRITEST; with neither, the run says so and records "not run".
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "cri"))
sys.path.insert(0, HERE)

from crinode import CONTAINERD_DIR, CRINode, containerd_major  # noqa: E402
from known_failures import reason_for  # noqa: E402
from registry import OfflineRegistry  # noqa: E402
from warden_cri import CRIError  # noqa: E402

# Not the runtime's: the image service is containerd's own (no shim is involved), and the
# machines have no AppArmor or SELinux loaded.
SKIPPED = [r"\[k8s\.io\] Image ", r"Image Manager", r"Image Consistency", r"Image Identifier",
           r"RemoveImage", r"AppArmor", r"SELinux"]
SUITE_TIMEOUT = "25m"


def find_critest():
    """critest beside the checkout (../shared/tools), else $CRITEST; None if neither exists."""
    candidates = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "tools", "cri-tools-*", "critest")))
    if os.environ.get("CRITEST"):
        candidates.insert(0, os.environ["CRITEST"])
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def spec_name(report):
    return " ".join(text for text in report.get("ContainerHierarchyTexts") or [] if text) + " " + report.get("LeafNodeText", "")


def failure_text(report):
    failure = report.get("Failure") or {}
    message = failure.get("Message", "")
    location = failure.get("Location", {})
    where = f" ({os.path.basename(location.get('FileName', ''))}:{location.get('LineNumber', '')})" if location else ""
    return (message.strip() + where)[-600:]


def parse_report(path):
    """(spec, outcome, seconds, detail) per spec of ginkgo's JSON report."""
    with open(path) as file:
        suites = json.load(file)
    specs = []
    for suite in suites:
        for report in suite.get("SpecReports") or []:
            if report.get("LeafNodeType") != "It":
                continue
            state = report.get("State", "")
            outcome = {"passed": "pass", "skipped": "skip", "pending": "skip"}.get(state, "fail")
            specs.append((spec_name(report).strip(), outcome, round(report.get("RunTime", 0) / 1e9, 1),
                          failure_text(report) if outcome == "fail" else ""))
    return specs


def remove_abandoned(node):
    """Pods and containers critest left (a failed spec skips its own clean-up): removed through
    CRI, as an operator would; returns how many pods there were."""
    pods = node.client.pods(timeout=30)
    for pod in pods:
        try:
            node.client.stop_pod(pod.id, timeout=60)
            node.client.remove_pod(pod.id, timeout=60)
        except CRIError as error:
            print(f"critest: could not remove abandoned pod {pod.id}: {error}", file=sys.stderr)
    return len(pods)


def host_netns():
    try:
        return set(os.listdir("/var/run/netns"))
    except OSError:
        return set()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handler", default="warden")
    parser.add_argument("--results")
    parser.add_argument("--focus")
    parser.add_argument("--network", default=os.environ.get("WARDEN_CRITEST_NETWORK", "sandbox"),
                        help="runsc --network for Warden's handlers (default: the product default, sandbox)")
    args = parser.parse_args()

    def record(entry):
        if args.results:
            with open(args.results, "a") as file:
                file.write(json.dumps(entry) + "\n")

    critest = find_critest()
    if critest is None:
        print("critest: NOT RUN — no critest in ../shared/tools/cri-tools-*/ and CRITEST is not set", file=sys.stderr)
        record({"summary": {"handler": args.handler, "status": "not run", "why": "no critest binary"}})
        return 3
    if args.handler.startswith("warden-shim") and containerd_major() < 2:
        print(f"critest: {args.handler} needs containerd 2.x (the Sandbox API); not run", file=sys.stderr)
        record({"summary": {"handler": args.handler, "status": "not run", "why": "containerd 1.x has no Sandbox API"}})
        return 0

    node = CRINode(runsc_network=args.network)
    registry = OfflineRegistry(node.path("registry"), node.netns)
    netns_before = host_netns()
    began = time.monotonic()
    try:
        registry.start()
        registry.push_images()
        node.registry_hosts = registry.hosts_dir
        with open(node.config_path, "w") as file:
            file.write(node.containerd_config())
        node.start()
        report = node.path("critest-report.json")
        skips = list(SKIPPED) + [pattern for pattern, _ in skipped_for(args.handler)]
        command = ["ip", "netns", "exec", node.netns, critest,
                   f"--runtime-endpoint=unix://{node.socket}", f"--image-endpoint=unix://{node.socket}",
                   f"--runtime-handler={args.handler}", "--ginkgo.no-color", f"--ginkgo.timeout={SUITE_TIMEOUT}",
                   f"--ginkgo.json-report={report}", "--ginkgo.skip=" + "|".join(skips)]
        if args.focus:
            command.append(f"--ginkgo.focus={args.focus}")
        print(f"critest: {critest} on containerd {CONTAINERD_DIR}, handler {args.handler}, runsc --network={args.network}",
              file=sys.stderr)
        with open(node.path("critest.log"), "w") as log:
            suite = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=30 * 60, cwd=node.dir)
        specs = parse_report(report) if os.path.exists(report) else []
        if not specs:
            raise RuntimeError(f"critest exited {suite.returncode} with no report: {tail(node.path('critest.log'))}")
        abandoned = remove_abandoned(node)
        leaks = node.leaks(wait=15)
        leaks += [f"pod netns /var/run/netns/{name}" for name in sorted(host_netns() - netns_before)]
    except Exception:
        print(tail(node.path("critest.log")), file=sys.stderr)
        raise
    finally:
        node.cleanup()
        registry.stop()

    unexplained = []
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for spec, outcome, seconds, detail in specs:
        reason = ""
        if outcome == "fail":
            reason = reason_for(spec, args.handler, containerd_major())
            if reason is None:
                unexplained.append((spec, detail))
                reason = "UNEXPLAINED"
        elif outcome == "skip":
            reason = next((why for pattern, why in skipped_for(args.handler) if re.search(pattern, spec)), "")
        counts[outcome] += 1
        record({"spec": spec, "handler": args.handler, "outcome": outcome, "seconds": seconds, "reason": reason,
                "detail": detail})
        mark = {"pass": "ok  ", "skip": "skip", "fail": "FAIL"}[outcome]
        print(f"{mark} {seconds:6.1f}s {spec}" + (f"\n       reason: {reason}" if reason else ""))
    minutes = (time.monotonic() - began) / 60
    summary = {"handler": args.handler, "status": "run", "passed": counts["pass"], "failed": counts["fail"],
               "skipped": counts["skip"], "ran": counts["pass"] + counts["fail"], "unexplained": len(unexplained),
               "abandoned_pods": abandoned, "leaks": leaks, "minutes": round(minutes, 1), "network": args.network}
    record({"summary": summary})
    print(f"critest {args.handler}: {counts['pass']} passed, {counts['fail']} failed ({len(unexplained)} unexplained), "
          f"{counts['skip']} skipped in {minutes:.1f} min; {abandoned} pods abandoned by critest removed; "
          f"leak audit: {leaks or 'clean'}")
    for spec, detail in unexplained:
        print(f"UNEXPLAINED FAILURE: {spec}\n    {detail}", file=sys.stderr)
    return 0 if not unexplained and not leaks else 1


def containerd_version():
    """The containerd under test's version ("2.1.9+unknown" -> "2.1.9")."""
    output = subprocess.run([os.path.join(CONTAINERD_DIR, "containerd"), "--version"], capture_output=True, text=True,
                            timeout=30).stdout.split()
    return output[2].lstrip("v").split("+")[0].split("~")[0] if len(output) > 2 else "0"


def skipped_for(handler):
    """(spec pattern, reason) of specs not run under this handler on this containerd."""
    from known_failures import SKIPPED_SPECS
    version = containerd_version()
    return [(pattern, why) for pattern, handlers, versions, why in SKIPPED_SPECS
            if re.search(handlers, handler) and re.match(versions, version)]


def tail(path, lines=40):
    try:
        with open(path) as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
