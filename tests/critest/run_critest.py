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

from crinode import CONTAINERD_DIR, RUNSC, CRINode, containerd_major  # noqa: E402
from known_failures import reason_for  # noqa: E402
from registry import OfflineRegistry  # noqa: E402
from warden_cri import CRIError, pb  # noqa: E402

# Not the runtime's: the image service is containerd's own (no shim is involved), and the
# machines have no AppArmor or SELinux loaded.
SKIPPED = [r"\[k8s\.io\] Image ", r"Image Manager", r"Image Consistency", r"Image Identifier",
           r"RemoveImage", r"AppArmor", r"SELinux"]
# critest's own bound on the whole suite (ginkgo); the baseline's hanging StartContainers need it.
SUITE_TIMEOUT = os.environ.get("WARDEN_CRITEST_TIMEOUT", "25m")


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
        print(f"critest abandoned pod {pod.metadata.name} ({pod.id[:13]}, {pb.PodSandboxState.Name(pod.state)}): removing it")
        try:
            node.client.stop_pod(pod.id, timeout=60)
            node.client.remove_pod(pod.id, timeout=60)
        except CRIError as error:
            print(f"critest: could not remove abandoned pod {pod.id}: {error}", file=sys.stderr)
    return len(pods)


def shared_memory_ids():
    """The System V shared memory segments of the host (critest's HostIpc specs make some)."""
    try:
        with open("/proc/sysvipc/shm") as file:
            return {line.split()[1] for line in file.readlines()[1:] if line.strip()}
    except OSError:
        return set()


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
    parser.add_argument("--network", default=os.environ.get("WARDEN_CRITEST_NETWORK"),
                        help="runsc --network for Warden's handlers (default: the shipped default, sandbox, when "
                             "a probe pod runs with it here, else host)")
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

    node = CRINode(runsc_network=args.network or "sandbox", port_mappings=True, oci_seccomp=True)
    registry = OfflineRegistry(node.path("registry"), node.netns)
    netns_before = host_netns()
    segments_before = shared_memory_ids()
    began = time.monotonic()
    try:
        registry.start()
        registry.push_images()
        node.registry_hosts = registry.hosts_dir
        with open(node.config_path, "w") as file:
            file.write(node.containerd_config())
        node.start()
        network_note = ""
        if args.network is None:
            args.network, network_note = choose_network(node, critest, args.handler)
        report = node.path("critest-report.json")
        skips = list(SKIPPED) + [pattern for pattern, _ in skipped_for(args.handler)]
        # nsenter, not `ip netns exec`: critest's mount specs mount on the host and expect
        # containerd (in the host's mount namespace) to see it; ip netns exec makes a new one.
        command = ["nsenter", f"--net=/var/run/netns/{node.netns}", critest,
                   f"--runtime-endpoint=unix://{node.socket}", f"--image-endpoint=unix://{node.socket}",
                   f"--runtime-handler={args.handler}", "--ginkgo.no-color", f"--ginkgo.timeout={SUITE_TIMEOUT}",
                   f"--ginkgo.json-report={report}", "--ginkgo.skip=" + "|".join(skips)]
        if args.focus:
            command.append(f"--ginkgo.focus={args.focus}")
        print(f"critest: {critest} on containerd {CONTAINERD_DIR}, handler {args.handler}, runsc --network={args.network}"
              + (f" ({network_note})" if network_note else ""), file=sys.stderr)
        with open(node.path("critest.log"), "w") as log:
            suite = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=30 * 60, cwd=node.dir)
        if node.containerd.poll() is not None:
            panic = [line for line in node.log_text().splitlines() if "panic" in line or "goroutine" in line][:5]
            raise RuntimeError(f"containerd exited ({node.containerd.returncode}) during critest: "
                               + ("\n".join(panic) or node.log_tail()))
        specs = parse_report(report) if os.path.exists(report) else []
        if not specs:
            raise RuntimeError(f"critest exited {suite.returncode} with no report: {tail(node.path('critest.log'))}")
        abandoned = remove_abandoned(node)
        registry.stop()
        leaks = node.leaks(wait=15)
        leaks += [f"pod netns /var/run/netns/{name}" for name in sorted(host_netns() - netns_before)]
    except Exception:
        print(tail(node.path("critest.log")), file=sys.stderr)
        raise
    finally:
        node.cleanup()
        registry.stop()
        # critest's HostIpc specs leave the segments they make on the host (ipcmk, no ipcrm).
        for segment in sorted(shared_memory_ids() - segments_before):
            subprocess.run(["ipcrm", "-m", segment], capture_output=True, timeout=10)

    unexplained = []
    found_release = release()
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for spec, outcome, seconds, detail in specs:
        reason = ""
        if outcome == "fail":
            reason = reason_for(spec, args.handler, found_release)
            if reason is None and not args.handler.startswith("warden"):
                # The baseline (containerd's runc shim driving the same runsc) is measured, not judged.
                reason = f"baseline ({args.handler}): {detail.splitlines()[0][:160] if detail else 'failed'}"
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
               "abandoned_pods": abandoned, "leaks": leaks, "minutes": round(minutes, 1), "network": args.network,
               "network_note": network_note, "release": found_release, "stale_reasons": stale_reasons(specs, args.handler)}
    record({"summary": summary})
    print(f"critest {args.handler}: {counts['pass']} passed, {counts['fail']} failed ({len(unexplained)} unexplained), "
          f"{counts['skip']} skipped in {minutes:.1f} min; {abandoned} pods abandoned by critest removed; "
          f"leak audit: {leaks or 'clean'}")
    for spec in summary["stale_reasons"]:
        print(f"note: {spec} passes but known_failures.py gives it a reason: drop the entry")
    for spec, detail in unexplained:
        print(f"UNEXPLAINED FAILURE: {spec}\n    {detail}", file=sys.stderr)
    return 0 if not unexplained and not leaks else 1


def choose_network(node, critest, handler):
    """runsc's network for the suite: the shipped default (sandbox) if a pod runs with it on this
    machine, else host (the pod's own network namespace through the host kernel), with why."""
    write_network(node, "sandbox")
    probe = subprocess.run(["nsenter", f"--net=/var/run/netns/{node.netns}", critest,
                            f"--runtime-endpoint=unix://{node.socket}", f"--image-endpoint=unix://{node.socket}",
                            f"--runtime-handler={handler}", "--ginkgo.no-color",
                            "--ginkgo.focus=should support running PodSandbox"],
                           capture_output=True, text=True, timeout=300, cwd=node.dir)
    if probe.returncode == 0:
        return "sandbox", "the shipped default"
    text = probe.stdout.replace("\\\\\"", "'").replace("\\\"", "'")
    found = re.search(r'runsc (?:create|start) failed \(exit status \d+\): ([^"\n]*)', text)
    why = found.group(1).strip() if found else "RunPodSandbox failed (critest's output in the node's dir)"
    write_network(node, "host")
    return "host", f"the shipped default, sandbox, fails here: {why}"


def write_network(node, network):
    """Sets runsc's --network of Warden's handlers and of the runc shim's runsc on a running node
    (each shim reads its config, and runsc its flags, when it starts: the next pod has it)."""
    node.runsc_network = network
    node.write_runc_runsc_wrapper()
    for name in os.listdir(node.dir):
        if name.startswith("warden") and name.endswith(".toml"):
            path = node.path(name)
            with open(path) as file:
                text = file.read()
            with open(path, "w") as file:
                file.write(re.sub(r'(?m)^network = ".*"$', f'network = "{network}"', text))


def stale_reasons(specs, handler):
    """Specs that passed although known_failures.py gives them a reason."""
    found = release()
    return [spec for spec, outcome, _, _ in specs if outcome == "pass" and reason_for(spec, handler, found)]


def release():
    """What the known failures are keyed by: "containerd 2.1.9 runsc 0.0~20240729.0"."""
    output = subprocess.run([os.path.join(CONTAINERD_DIR, "containerd"), "--version"], capture_output=True, text=True,
                            timeout=30).stdout.split()
    containerd = output[2].lstrip("v").split("+")[0].split("~")[0] if len(output) > 2 else "0"
    output = subprocess.run([RUNSC, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    runsc = output[2] if len(output) > 2 else "0"
    return f"containerd {containerd} runsc {runsc}"


def skipped_for(handler):
    """(spec pattern, reason) of specs not run under this handler on this containerd."""
    from known_failures import SKIPPED_SPECS
    found = release()
    return [(pattern, why) for pattern, handlers, releases, why in SKIPPED_SPECS
            if re.search(handlers, handler) and re.search(releases, found)]


def tail(path, lines=40):
    try:
        with open(path) as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
