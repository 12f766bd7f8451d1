#!/usr/bin/env python3
"""The target graph of docs/architecture.md, drawn from the package itself.

Reads `swift package dump-package` (the manifest as SwiftPM sees it) and the sources, and
writes between `<!-- targets:begin -->` and `<!-- targets:end -->`: the targets in layers (each
imports only targets in layers below it), then one row per target with what it imports, its
files and lines. Tests and test tools are left out: the picture is of what ships.

    scripts/architecture.py            print the section
    scripts/architecture.py --write    rewrite it in docs/architecture.md
    scripts/architecture.py --check    fail (exit 1, saying what) when the page no longer matches
                                       the package: its generated section is stale, a shipped
                                       target has no row in its "owns" table, a target other
                                       than LinuxSys/Seccomp (and their C parts) imports Glibc
                                       or a C module (the page's rule: syscalls live only
                                       there), or WardenNode imports ShimCore (the CLI must not
                                       link the pod actor). scripts/test.sh runs it.
"""
import json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs/architecture.md")
# Built only for tests, benchmarks or fuzzing.
NOT_SHIPPED = {"TTRPCEchoService", "warden-ttrpc-echo", "supervisor-sweep-probe", "executor-probe", "WardenTestSupport",
               "FrontDoorFuzz"}


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


# Targets allowed to make syscalls (the page's rule), and the modules that give access to them.
SYSCALL_TARGETS = {"LinuxSys", "CLinuxSys", "Seccomp", "CSeccomp"}
SYSTEM_MODULES = {"Glibc", "CLinuxSys", "CSeccomp"}
BEGIN, END = "<!-- targets:begin -->", "<!-- targets:end -->"


def problems(graph, doc):
    """What no longer holds between the package and the page, one line each."""
    found = []
    head, rest = doc.split(BEGIN, 1)
    committed, tail = rest.split(END, 1)
    if committed.strip() != section(graph).strip():
        found.append("docs/architecture.md's target section is stale: run scripts/architecture.py --write")
    owned = set()
    for line in (head + tail).splitlines():
        if line.startswith("| `"):
            owned.update(name.strip("` ") for name in line.split("|")[1].split(","))
    for name in sorted(set(graph) - owned):
        found.append(f"target {name} has no row in docs/architecture.md's table of what each target owns")
    for name in sorted(graph):
        if name in SYSCALL_TARGETS:
            continue
        for base, _, files in os.walk(os.path.join(ROOT, "Sources", name)):
            for file in sorted(files):
                if not file.endswith(".swift"):
                    continue
                with open(os.path.join(base, file), encoding="utf-8") as handle:
                    for number, line in enumerate(handle, 1):
                        words = line.split()
                        if len(words) >= 2 and words[-2] == "import" and words[-1] in SYSTEM_MODULES:
                            found.append(f"{os.path.relpath(os.path.join(base, file), ROOT)}:{number} imports "
                                         f"{words[-1]}: syscalls live only in {', '.join(sorted(SYSCALL_TARGETS))}")
    if "ShimCore" in graph.get("WardenNode", ("", []))[1]:
        found.append("WardenNode imports ShimCore: the operator CLI must not link the pod actor")
    return found


def main():
    graph = targets()
    text = section(graph)
    with open(DOC, encoding="utf-8") as handle:
        doc = handle.read()
    if "--check" in sys.argv:
        found = problems(graph, doc)
        for line in found:
            print(f"architecture.py: {line}", file=sys.stderr)
        sys.exit(1 if found else 0)
    if "--write" not in sys.argv:
        print(text)
        return
    begin, end = BEGIN, END
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(DOC, "w", encoding="utf-8") as handle:
        handle.write(head + begin + "\n" + text + "\n" + end + tail)


if __name__ == "__main__":
    main()
