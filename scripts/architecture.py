#!/usr/bin/env python3
"""The target graph of docs/architecture.md, drawn from the package itself.

Reads `swift package dump-package` (the manifest as SwiftPM sees it) and the sources, and
writes between `<!-- targets:begin -->` and `<!-- targets:end -->`: the targets in layers (each
imports only targets in layers below it), then one row per target with what it imports, its
files and lines. Tests and test tools are left out: the picture is of what ships.

    scripts/architecture.py            print the section
    scripts/architecture.py --write    rewrite it in docs/architecture.md
"""
import json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs/architecture.md")
# Built only for tests, benchmarks or fuzzing.
NOT_SHIPPED = {"TTRPCEchoService", "warden-ttrpc-echo", "supervisor-sweep-probe", "WardenTestSupport", "FrontDoorFuzz"}


def targets():
    dumped = subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = {}
    for target in json.loads(dumped)["targets"]:
        if target["type"] == "test" or target["name"] in NOT_SHIPPED:
            continue
        deps = []
        for dependency in target.get("dependencies", []):
            kind, value = next(iter(dependency.items()))
            deps.append(value[0] if kind in ("byName", "target") else value[0] + " (package)")
        result[target["name"]] = (target["type"], deps)
    return result


def size(name):
    directory = os.path.join(ROOT, "Sources", name)
    files, lines = 0, 0
    for base, _, names in os.walk(directory):
        if "Generated" in base:
            continue
        for file in names:
            if file.endswith((".swift", ".c", ".h")):
                files += 1
                with open(os.path.join(base, file), encoding="utf-8") as handle:
                    lines += sum(1 for _ in handle)
    return files, lines


def section(graph):
    level = {}

    def depth(name):
        if name not in level:
            inner = [d for d in graph[name][1] if d in graph]
            level[name] = 1 + max((depth(d) for d in inner), default=-1)
        return level[name]

    for name in graph:
        depth(name)
    out = ["```"]
    for layer in range(max(level.values()), -1, -1):
        names = sorted(n for n in graph if level[n] == layer)
        out.append(f"{layer}  " + "   ".join(names))
    out += ["```", "", "| target | kind | imports | files | lines (hand-written) |", "|---|---|---|---|---|"]
    for name in sorted(graph, key=lambda n: (-level[n], n)):
        kind, deps = graph[name]
        files, lines = size(name)
        out.append(f"| `{name}` | {kind} | {', '.join(deps) or '—'} | {files} | {lines} |")
    return "\n".join(out)


def main():
    text = section(targets())
    if "--write" not in sys.argv:
        print(text)
        return
    with open(DOC, encoding="utf-8") as handle:
        doc = handle.read()
    begin, end = "<!-- targets:begin -->", "<!-- targets:end -->"
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(DOC, "w", encoding="utf-8") as handle:
        handle.write(head + begin + "\n" + text + "\n" + end + tail)


if __name__ == "__main__":
    main()
