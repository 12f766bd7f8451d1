#!/usr/bin/env python3
"""The CRI conformance table: cri-tools' critest specs × runtime handler × release set, built
from what tests/critest/run_critest.py recorded, never typed.

    scripts/conformance-table.py RESULTS_DIR                 print it (Markdown)
    scripts/conformance-table.py RESULTS_DIR --readme FILE   also put it between FILE's markers

RESULTS_DIR holds one directory per release set (scripts/test.sh), each with
`critest-<handler>.jsonl` per handler run and `versions.env`. The summary gives, per set and
handler, how many specs passed of those run; the spec table gives each spec that did not pass
everywhere, with its outcome per column and the reason it fails (tests/critest/known_failures.py:
gVisor's, the test network's or containerd's, never Warden's). A column whose run did not
happen reads "not run", with why.
"""
import json
import os
import sys

SETS = ["current", "lts", "bookworm", "next"]
HANDLERS = ["warden", "warden-shim", "runc-runsc"]
BEGIN, END = "<!-- conformance-table:begin -->", "<!-- conformance-table:end -->"


def load(results_dir):
    """{(set, handler): {"summary": {...}, "specs": {spec: record}}} of every run found."""
    runs = {}
    for name in sorted(os.listdir(results_dir)):
        directory = os.path.join(results_dir, name)
        if not os.path.isdir(directory):
            continue
        for handler in HANDLERS:
            path = os.path.join(directory, f"critest-{handler}.jsonl")
            if not os.path.exists(path):
                continue
            run = {"summary": None, "specs": {}}
            with open(path) as file:
                for line in file:
                    record = json.loads(line)
                    if "summary" in record:
                        run["summary"] = record["summary"]
                    else:
                        run["specs"][record["spec"]] = record
            runs[(name, handler)] = run
    return runs


def version(results_dir, name, key):
    path = os.path.join(results_dir, name, "versions.env")
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                found, _, value = line.strip().partition("=")
                if found == key:
                    return value.strip("'\"").replace("\\~", "~").replace("\\+", "+")
    return "?"


def short(spec):
    return spec.replace("[k8s.io] ", "").replace(" [Conformance]", "").replace("[It] ", "")


def table(results_dir):
    runs = load(results_dir)
    order = [s for s in SETS if any(key[0] == s for key in runs)] + sorted({key[0] for key in runs} - set(SETS))
    columns = [(s, h) for s in order for h in HANDLERS if (s, h) in runs]
    lines = ["| release set | containerd | runsc | handler | passed | failed (all with a reason below) | unexplained | "
             "skipped | pods critest abandoned | leak audit | minutes |", "|" + "---|" * 11]
    for name, handler in columns:
        summary = runs[(name, handler)]["summary"] or {"status": "incomplete"}
        head = f"| {name} | {version(results_dir, name, 'WARDEN_CONTAINERD_VERSION')} | " \
               f"{version(results_dir, name, 'WARDEN_RUNSC_VERSION')} | `{handler}` |"
        if summary.get("status") != "run":
            lines.append(head + f" not run: {summary.get('why', summary.get('status'))} |" + " |" * 7)
            continue
        leaks = "clean" if not summary["leaks"] else f"{len(summary['leaks'])} left"
        lines.append(head + f" {summary['passed']}/{summary['ran']} | {summary['failed']} | {summary['unexplained']} | "
                     f"{summary['skipped']} | {summary['abandoned_pods']} | {leaks} | {summary['minutes']} |")
    specs = sorted({spec for run in runs.values() for spec in run["specs"]})
    not_passing = [spec for spec in specs
                   if any(run["specs"].get(spec, {}).get("outcome") == "fail" for run in runs.values())]
    lines += ["", "Specs that fail in some run (every other spec critest ran passed in every column):", "",
              "| spec | " + " | ".join(f"{s} `{h}`" for s, h in columns) + " | why |",
              "|" + "---|" * (len(columns) + 2)]
    for spec in not_passing:
        cells, reasons = [], []
        for key in columns:
            record = runs[key]["specs"].get(spec)
            outcome = record["outcome"] if record else "—"
            cells.append({"pass": "pass", "fail": "fail", "skip": "skip"}.get(outcome, outcome))
            if record and record.get("reason") and record["reason"] not in reasons:
                reasons.append(record["reason"])
        lines.append(f"| {short(spec)} | " + " | ".join(cells) + " | " + "<br>".join(reasons).replace("|", "\\|") + " |")
    skipped = sorted({(spec, record.get("reason", "")) for run in runs.values() for spec, record in run["specs"].items()
                      if record["outcome"] == "skip" and record.get("reason")})
    if skipped:
        lines += ["", "Specs not run in some column, and why:", ""]
        lines += [f"- {short(spec)}: {reason}" for spec, reason in skipped]
    lines += ["", "Generated by `scripts/conformance-table.py` from `tests/critest/run_critest.py`'s records "
              "(`scripts/test.sh`). Image-service specs (containerd's own, no runtime involved) and "
              "AppArmor/SELinux (not loaded on these machines) are not run."]
    return "\n".join(lines) + "\n"


def main(arguments):
    if not arguments or len(arguments) not in (1, 3) or (len(arguments) == 3 and arguments[1] != "--readme"):
        print(__doc__, file=sys.stderr)
        return 2
    if not os.path.isdir(arguments[0]):
        print(f"conformance-table.py: no results directory {arguments[0]}", file=sys.stderr)
        return 1
    text = table(arguments[0])
    print(text)
    if len(arguments) == 3:
        with open(arguments[2]) as file:
            content = file.read()
        if BEGIN not in content or END not in content:
            print(f"conformance-table.py: {arguments[2]} has no {BEGIN} … {END} markers", file=sys.stderr)
            return 1
        head, rest = content.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(arguments[2], "w") as file:
            file.write(head + BEGIN + "\n" + text + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
