"""tools/install/warden_install.py without a node: the block it appends, containerd's version,
what a shim-sandboxed handler may carry on which release, and a whole install and uninstall
under a temp --root (the CRI suite's InstallTests run it against containerd itself)."""
import contextlib
import io
import os
import sys
import tempfile
import tomllib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "install"))

import warden_install as wi  # noqa: E402

SCRIPTS = os.path.join(HERE, "..", "..", "scripts")


class PureTests(unittest.TestCase):
    def test_versions_read_as_containerd_and_operators_write_them(self):
        for text, expected in [("v2.1.9", (2, 1, 9)), ("2.3.4+unknown", (2, 3, 4)), ("1.6.20~ds1", (1, 6, 20)),
                               ("2.3", (2, 3, 0)), ("2.0.0-rc.1", (2, 0, 0))]:
            self.assertEqual(wi.parse_version(text), expected, text)
        with self.assertRaisesRegex(wi.InstallError, "'two' is not X.Y.Z"):
            wi.parse_version("two")

    def test_the_block_reads_back_as_the_handler_in_every_config_version(self):
        for version in (2, 3, 4):
            for sandboxer, options in [("podsandbox", True), ("shim", True), ("shim", False)]:
                text = f"version = {version}\n".encode() + wi.handler_block(version, "warden", sandboxer, "/etc/w.toml", options)
                handler = wi.handler_table(tomllib.loads(text.decode()), version, "warden")
                self.assertEqual(handler["runtime_type"], wi.RUNTIME_TYPE)
                self.assertEqual(handler.get("sandboxer", "podsandbox"), sandboxer)
                self.assertEqual(handler.get("options"), {"ConfigPath": "/etc/w.toml"} if options else None)
                self.assertEqual(wi.without_block(text, "warden", "c.toml"), f"version = {version}\n".encode())

    def test_a_block_without_its_end_is_refused(self):
        text = b"version = 2\n" + wi.handler_block(2, "warden", "podsandbox", "/w.toml")
        cut = text[:text.index(b"# END")]
        with self.assertRaisesRegex(wi.InstallError, "not its end"):
            wi.without_block(cut, "warden", "c.toml")
        self.assertIsNone(wi.without_block(b"version = 2\n", "warden", "c.toml"))

    def test_config_versions_1_and_5_are_refused(self):
        for config in [{}, {"version": 5}]:
            with self.assertRaisesRegex(wi.InstallError, "config version"):
                wi.config_version(config, "c.toml")

    def test_what_a_shim_sandboxed_handler_may_carry_by_release(self):
        default = wi.DEFAULT_WARDEN_CONFIG
        with self.assertRaisesRegex(wi.InstallError, "--containerd-version"):
            wi.shim_handler_options(None, False, default)
        for release in [(2, 0, 0), (2, 1, 9), (2, 2, 7)]:
            with self.assertRaisesRegex(wi.InstallError, "panics.*--accept-hostnetwork-panic"):
                wi.shim_handler_options(release, False, default)
            self.assertFalse(wi.shim_handler_options(release, True, default))
        self.assertFalse(wi.shim_handler_options((2, 3, 0), False, default))  # the options fix is 2.3.1's
        with self.assertRaisesRegex(wi.InstallError, "cannot pass a ConfigPath"):
            wi.shim_handler_options((2, 3, 0), False, "/elsewhere.toml")
        self.assertTrue(wi.shim_handler_options((2, 3, 1), False, "/elsewhere.toml"))
        self.assertTrue(wi.shim_handler_options((2, 3, 4), False, default))


class InstallerTests(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.TemporaryDirectory(prefix="winstall-")
        self.addCleanup(self.work.cleanup)
        self.root = os.path.join(self.work.name, "host")
        self.source = os.path.join(self.work.name, "from")
        os.makedirs(os.path.join(self.root, "etc", "containerd"))
        os.makedirs(os.path.join(self.source, "pause-rootfs"))
        for name, mode in [(wi.SHIM, 0o755), (os.path.join("pause-rootfs", "pause"), 0o755)]:
            with open(os.path.join(self.source, name), "wb") as file:
                file.write(b"\x7fELF stand-in " + name.encode())
            os.chmod(os.path.join(self.source, name), mode)
        self.config = os.path.join(self.root, "etc", "containerd", "config.toml")

    def main(self, *arguments):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = wi.main([SCRIPTS, "--root", self.root, "--from", self.source, *arguments])
        return status, out.getvalue(), err.getvalue()

    def files(self):
        found = {}
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as file:
                    found[os.path.relpath(path, self.root)] = file.read()
        return found

    def test_install_then_uninstall_restores_every_byte(self):
        with open(self.config, "wb") as file:
            file.write(b"version = 3\n# the operator's comment\n")
        before = self.files()
        status, out, err = self.main("--dry-run")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("+  ConfigPath = \"/etc/containerd/warden.toml\"", out)
        self.assertEqual(self.files(), before, "--dry-run changed something")
        self.assertEqual(self.main()[0], 0)
        installed = self.files()
        self.assertEqual(installed["usr/local/bin/containerd-shim-warden-v2"], b"\x7fELF stand-in " + wi.SHIM.encode())
        self.assertIn("etc/containerd/warden.toml", installed)
        self.assertIn(b"# the operator's comment", installed["etc/containerd/config.toml"])
        self.assertIn("nothing to do", self.main()[1])
        self.assertEqual(self.main("--uninstall")[0], 0)
        self.assertEqual(self.files(), before)

    def test_refusals_change_nothing(self):
        cases = [
            (b'root = "/var/lib/containerd"\n', [], "config version 1"),
            (b"version = 3\n[plugins\n", [], "not valid TOML"),
            (b"version = 2\n", ["--sandboxer", "shim"], "needs containerd 2.x"),
            (b"version = 3\n", ["--sandboxer", "shim", "--containerd-version", "2.1.9"], "panics"),
        ]
        for text, arguments, complaint in cases:
            with open(self.config, "wb") as file:
                file.write(text)
            before = self.files()
            status, _, err = self.main(*arguments)
            self.assertEqual(status, 2, err)
            self.assertIn(complaint, err)
            self.assertIn("nothing changed", err)
            self.assertEqual(self.files(), before, complaint)


if __name__ == "__main__":
    unittest.main()
