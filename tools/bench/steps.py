#!/usr/bin/env python3
"""Step timeline of one `ctr run --rm`, from `perf script` output of the
sched:sched_process_exec/exit tracepoints (no ptrace: runsc's sandbox cannot run under strace)
plus the argv log that a runsc wrapper writes (`<pid> <verb…>` per call).

usage: steps.py PERF_SCRIPT_OUTPUT RUNSC_ARGV_LOG -> JSON [{"step", "start_ms", "ms"}]
Steps: `ctr`, each shim process (the first exec of a shim binary is `start`; the one that
lives longest is the server; later short ones are `delete`), each runsc call by its verb.
"""
import json
import re
import sys

# `perf script -F pid,tid,time,event,trace`: "  PID/TID  TIME: sched:EVENT: FIELDS"
EVENT = re.compile(r'^\s*(\d+)/(\d+)\s+([\d.]+):\s+sched:(sched_process_exec|sched_process_exit):\s+(.*)$')
RUNSC_VERBS = ('create', 'start', 'state', 'kill', 'wait', 'delete', 'exec', 'ps', 'events', 'pause', 'resume')


def main(perf_path, argv_path):
    verbs = {}
    for line in open(argv_path):
        parts = line.split()
        if parts:
            verb = next((a for a in parts[1:] if a in RUNSC_VERBS), 'other')
            verbs[int(parts[0])] = verb
    live = {}
    steps = []
    for line in open(perf_path, errors='replace'):
        m = EVENT.match(line)
        if not m:
            continue
        pid, t, kind, rest = int(m.group(1)), float(m.group(3)), m.group(4), m.group(5)
        if kind == 'sched_process_exec':
            filename = re.search(r'filename=(\S+)', rest).group(1)
            name = filename.rsplit('/', 1)[-1]
            if pid in live:
                continue  # a re-exec (the wrapper exec'ing runsc) keeps its first start
            if name in ('ctr',) or name.startswith('containerd-shim') or name in ('runsc-none', 'runsc', 'warden-runsc'):
                live[pid] = (name, t)
        elif 'group_dead=true' in rest and pid in live:
            name, t0 = live.pop(pid)
            steps.append([name, pid, t0, t])
    for pid, (name, t0) in live.items():
        steps.append([name, pid, t0, None])
    ctr = [s for s in steps if s[0] == 'ctr']
    origin = min(s[2] for s in ctr) if ctr else min(s[2] for s in steps)
    out = []
    shim_seen = {}
    for name, pid, t0, t1 in sorted(steps, key=lambda s: s[2]):
        if name.startswith('containerd-shim'):
            n = shim_seen.get(name, 0)
            shim_seen[name] = n + 1
            lived = (t1 or t0) - t0
            label = 'shim start' if n == 0 else ('shim server' if t1 is None or lived > 0.05 and n == 1 else 'shim delete')
        elif name == 'ctr':
            label = 'ctr run --rm (whole)'
        else:
            if pid in verbs:
                label = 'runsc ' + verbs[pid]
            else:
                continue  # runsc's own re-execs (sandbox, gofer) are not calls
        out.append({'step': label, 'start_ms': round((t0 - origin) * 1000, 1),
                    'ms': round((t1 - t0) * 1000, 1) if t1 else None})
    json.dump(out, sys.stdout, indent=1)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
