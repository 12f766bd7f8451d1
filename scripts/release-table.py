#!/usr/bin/env python3
"""The release × capability table, built from what the test runs recorded, never typed.

    scripts/release-table.py RESULTS_DIR                 print the table (Markdown)
    scripts/release-table.py RESULTS_DIR --readme FILE   also put it between FILE's markers

RESULTS_DIR holds one directory per release set, as scripts/test.sh writes them:
  versions.env                  scripts/releases.sh --env (the exact versions that ran)
  <suite>-swift-testing.xml     `swift test --xunit-output <suite>.xml` (Swift Testing's file)
  cri.jsonl                     tests/cri/run_suite.py's records
  critest-<handler>.jsonl       tests/critest/run_critest.py's records (the critest column)
  finished                      the date the set's run ended

A capability's cell is "pass (N)" when each of its N tests ran and passed, "FAIL: names"
when one failed, and "not run" when the set's run had none of them.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ElementTree

# (column, [(source, pattern)]): source "swift" matches "<Suite>/<test>" of the Swift suites,
# "cri" matches "<Class>.<test>" of the CRI suite.
CAPABILITIES = [
    ("ctr run, exec, task table", [("swift", r"^(TaskTableTests/taskAPIThroughCtr|StartDeleteTests/|IDPrefixTests/)")]),
    ("wedged sandbox stop (ctr, every fault)", [("swift", r"^(TerminationTests/|LadderTests/|KillStormTests/|WedgedPidsTests/)")]),
    ("CRI pod lifecycle, pod loops", [("cri", r"^(PodLifecycleTests|PodLoopTests)\.")]),
    ("CRI wedged pods", [("cri", r"^WedgedPodTests\.")]),
    ("`crictl exec -it` and tty containers at CRI's ids", [("cri", r"^TerminalTests\.")]),
    ("containerd restart (ctr and CRI)", [("swift", r"^TaskTableTests/containerdRestart"), ("cri", r"^ContainerdRestartTests\.")]),
    ("install.sh on `containerd config default`", [("cri", r"^(InstallTests|InstallSnippetTests|NodeImageTests)\.")]),
    ("operator tools, metrics, seccomp", [("swift", r"^(OperatorTests/|SeccompTests/|DeadShimTests/)")]),
    ("sandbox control channel (both paths), stats per container",
     [("swift", r"^ControlChannelTests/"), ("cri", r"^ContainerStatsTests\.")]),
    # containerd 2.x only: on 1.6/1.7 the CRI tests skip (no Sandbox API), so "not run".
    ("CRI through the Sandbox API (`sandboxer = \"shim\"`)", [("cri", r"^ShimSandboxerTests\.")]),
    # containerd 2.3+ only: its log over a CRI lifecycle, and the in-place upgrade from 2.1.
    ("containerd 2.3: bootstrap, `-info`, upgrade from 2.1 with pods running",
     [("cri", r"^(Containerd23Tests|UpgradeTests)\.")]),
]
SETS = ["current", "lts", "bookworm", "next"]
BEGIN, END = "<!-- release-table:begin -->", "<!-- release-table:end -->"


def swift_results(directory):
    """{"Suite/test": (passed, detail)} from every Swift Testing xunit file of the set."""
    found = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith("-swift-testing.xml"):
            continue
        try:
            root = ElementTree.parse(os.path.join(directory, name)).getroot()
        except ElementTree.ParseError as error:
            found[f"{name}/unreadable"] = (False, str(error))
            continue
        for case in root.iter("testcase"):
            suite = case.get("classname", "").split(".")[-1]
            test = case.get("name", "").split("(")[0]
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if case.find("skipped") is not None:
                continue
            key = f"{suite}/{test}"
            passed = failure is None and found.get(key, (True, ""))[0]
            found[key] = (passed, "" if failure is None else (failure.get("message") or "")[:200])
    return found


def cri_results(directory):
    """{"Class.test": (passed, detail)} from the CRI suite's records."""
    found = {}
    path = os.path.join(directory, "cri.jsonl")
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                record = json.loads(line)
                if record["outcome"] == "skip":
                    continue
                # "test_cri.Class.test" (a setUpClass error: "setUpClass (test_cri.Class)").
                identity = record["test"]
                match = re.search(r"\((?:\w+\.)?(\w+)\)", identity)
                key = match.group(1) + ".setUpClass" if match else ".".join(identity.split(".")[-2:])
                found[key] = (record["outcome"] == "pass", record.get("detail", ""))
    return found


def critest_cell(directory):
    """Per handler: specs passed of those critest ran, and whether every failure has a reason
    that is not Warden's; "not run" (with why) when it did not run."""
    parts = []
    for name in sorted(os.listdir(directory)):
        match = re.fullmatch(r"critest-(.+)\.jsonl", name)
        if not match:
            continue
        summary = None
        with open(os.path.join(directory, name)) as file:
            for line in file:
                record = json.loads(line)
                summary = record.get("summary", summary)
        handler = match.group(1)
        if summary is None:
            parts.append(f"`{handler}` incomplete")
        elif summary.get("status") != "run":
            parts.append(f"`{handler}` not run ({summary.get('why', '')})")
        else:
            verdict = "" if not summary["unexplained"] and not summary["leaks"] else \
                f", FAIL: {summary['unexplained']} unexplained, {len(summary['leaks'])} left"
            parts.append(f"`{handler}` {summary['passed']}/{summary['ran']}{verdict}")
    return "; ".join(parts) or "not run"


def versions(directory):
    values = {}
    path = os.path.join(directory, "versions.env")
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                key, _, value = line.strip().partition("=")
                values[key] = value.strip("'\"").replace("\\~", "~").replace("\\+", "+")
    return values


def cell(results, rules):
    matched = [(key, outcome) for source, pattern in rules for key, outcome in results[source].items()
               if re.search(pattern, key)]
    if not matched:
        return "not run"
    failed = [key for key, (passed, _) in matched if not passed]
    if failed:
        return "FAIL: " + ", ".join(sorted(failed))
    return f"pass ({len(matched)})"


def table(results_dir):
    rows = []
    header = "| release set | containerd | runsc | " + " | ".join(name for name, _ in CAPABILITIES) + \
        " | critest (specs passed; the rest with a reason, section \"CRI conformance\") | all tests |"
    rows.append(header)
    rows.append("|" + "---|" * (len(CAPABILITIES) + 5))
    present = [s for s in SETS if os.path.isdir(os.path.join(results_dir, s))]
    present += sorted(s for s in os.listdir(results_dir) if s not in SETS and os.path.isdir(os.path.join(results_dir, s)))
    dates = []
    for name in present:
        directory = os.path.join(results_dir, name)
        not_run = os.path.join(directory, "not-run")
        if os.path.exists(not_run):
            # The set's containerd is not on the machine (scripts/releases.sh said why).
            with open(not_run) as file:
                why = file.read().strip() or "not available"
            rows.append(f"| {name} | not available | | " + " | ".join(["NOT RUN"] * len(CAPABILITIES))
                        + f" | NOT RUN | NOT RUN: {why} |")
            continue
        results = {"swift": swift_results(directory), "cri": cri_results(directory)}
        info = versions(directory)
        everything = list(results["swift"].values()) + list(results["cri"].values())
        passed = sum(1 for ok, _ in everything if ok)
        total = f"{passed}/{len(everything)} passed" if everything else "not run"
        cells = [cell(results, rules) for _, rules in CAPABILITIES]
        rows.append(f"| {name} | {info.get('WARDEN_CONTAINERD_VERSION', '?')} | {info.get('WARDEN_RUNSC_VERSION', '?')} | "
                    + " | ".join(cells) + f" | {critest_cell(directory)} | {total} |")
        finished = os.path.join(directory, "finished")
        if os.path.exists(finished):
            with open(finished) as file:
                dates.append(f"{name} {file.read().strip()}")
    source = "Generated by `scripts/release-table.py` from `scripts/test.sh`'s results"
    if dates:
        source += " (runs finished: " + "; ".join(dates) + ")"
    return "\n".join(rows) + "\n\n" + source + ". A number is how many tests the cell covers.\n"


def main(arguments):
    if not arguments or len(arguments) not in (1, 3) or (len(arguments) == 3 and arguments[1] != "--readme"):
        print(__doc__, file=sys.stderr)
        return 2
    results_dir = arguments[0]
    if not os.path.isdir(results_dir):
        print(f"release-table.py: no results directory {results_dir}", file=sys.stderr)
        return 1
    text = table(results_dir)
    print(text)
    if len(arguments) == 3:
        readme = arguments[2]
        with open(readme) as file:
            content = file.read()
        if BEGIN not in content or END not in content:
            print(f"release-table.py: {readme} has no {BEGIN} … {END} markers", file=sys.stderr)
            return 1
        head, rest = content.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(readme, "w") as file:
            file.write(head + BEGIN + "\n" + text + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
