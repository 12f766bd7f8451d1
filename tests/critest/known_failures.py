"""Why a critest spec fails under Warden, when it does: each reason is gVisor's (with runsc's
error or the gVisor documentation that says so), the test network's, or containerd's. None may be
Warden's own: a failure with no entry here fails tests/critest/run_critest.py.

KNOWN_FAILURES: (spec regex, handler regex, reason). SKIPPED_SPECS: specs not run at all, with why.
"""
import re

KNOWN_FAILURES = [
]

SKIPPED_SPECS = [
]


def reason_for(spec, handler, containerd_major):
    for pattern, handlers, reason in KNOWN_FAILURES:
        if re.search(pattern, spec) and re.search(handlers, handler):
            return reason
    return None
