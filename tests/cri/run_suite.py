"""Runs the CRI suite (unittest discovery in tests/cri) as `python3 -m unittest discover -v`
does, and also records each test's outcome as JSON lines in $WARDEN_RESULTS_FILE (if set):
{"test": "test_cri.Class.test_name", "outcome": "pass|fail|error|skip", "seconds": …, "detail": …}.
scripts/release-table.py builds the README's release × capability table from those records."""
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class RecordingResult(unittest.TextTestResult):
    def startTest(self, test):
        self._began = time.monotonic()
        super().startTest(test)

    def _record(self, test, outcome, detail=""):
        path = os.environ.get("WARDEN_RESULTS_FILE")
        if not path:
            return
        began = getattr(self, "_began", time.monotonic())
        with open(path, "a") as file:
            file.write(json.dumps({"test": test.id(), "outcome": outcome,
                                   "seconds": round(time.monotonic() - began, 2), "detail": detail[-400:]}) + "\n")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        # An error in setUpClass arrives with a placeholder test; its id names the class.
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.discover(HERE, top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, resultclass=RecordingResult).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
