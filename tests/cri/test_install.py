"""scripts/install.sh against containerd itself: on a copy of containerd's default config it
installs a handler containerd runs a pod through, and --uninstall restores the bytes; the
snippets in shim-config/ read as what it appends; the node image's layout installs from
itself. (Its program's own tests, no node: tests/install.)"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crinode import CONTAINERD, RUNSC, CRINode, build_directory, run  # noqa: E402
from test_cri import SLEEPER  # noqa: E402


class InstallTests(unittest.TestCase):
    """scripts/install.sh on a copy of containerd's default config (`containerd config default`,
    made private: its root, state, socket, CNI dirs and /opt path under the node's temp dir),
    then containerd runs a pod through the installed handler; --uninstall restores the bytes."""

    # (default line, what the private node uses instead), for containerd's default config of
    # version 2 (containerd 1.6, 1.7) and version 3 (2.x). {sandbox} stands for whatever pause
    # tag the release defaults to.
    PRIVATE = {
        2: [
            ('root = "/var/lib/containerd"', 'root = "{dir}/root"'),
            ('state = "/run/containerd"', 'state = "{dir}/state"'),
            ('address = "/run/containerd/containerd.sock"', 'address = "{dir}/c.sock"'),
            ('sandbox_image = "{sandbox}"', 'sandbox_image = "warden.test/pause:1"'),
            # Upstream's default is /opt/cni/bin; Debian's 1.7 has /usr/lib/cni (1.6: upstream's).
            ('bin_dir = "{cni_dir}"', 'bin_dir = "{dir}/cni-bin"'),
            ('conf_dir = "/etc/cni/net.d"', 'conf_dir = "{dir}/cni-conf"'),
            # The test machines lack CAP_SYS_RESOURCE (see crinode.py).
            ('restrict_oom_score_adj = false', 'restrict_oom_score_adj = true'),
        ],
        3: [
            ("root = '/var/lib/containerd'", "root = '{dir}/root'"),
            ("state = '/run/containerd'", "state = '{dir}/state'"),
            ("address = '/run/containerd/containerd.sock'", "address = '{dir}/c.sock'"),
            ("sandbox = '{sandbox}'", "sandbox = 'warden.test/pause:1'"),
            # Upstream's default is ['/opt/cni/bin']; Debian's 2.1.9 puts '/usr/lib/cni' first.
            ("bin_dirs = [{cni_dirs}]", "bin_dirs = ['{dir}/cni-bin']"),
            ("conf_dir = '/etc/cni/net.d'", "conf_dir = '{dir}/cni-conf'"),
            ("restrict_oom_score_adj = false", "restrict_oom_score_adj = true"),
        ],
    }
    PRIVATE[4] = PRIVATE[3]  # containerd 2.3's default config: the same lines
    # Where install.sh puts the handler, by config version.
    HANDLER_TABLE = {2: '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.warden]',
                     3: '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.warden]',
                     4: '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.warden]'}

    @staticmethod
    def privatize(default, directory):
        """containerd's default config made private: every path under the node's temp dir."""
        declared = re.search(r"^version = ([0-9]+)", default, re.MULTILINE)
        version = int(declared.group(1)) if declared else 2
        sandbox = re.search(r"registry\.k8s\.io/pause:[0-9.]+", default)
        cni_dirs = re.search(r"bin_dirs = \[([^\]]*)\]", default)
        cni_dir = re.search(r'bin_dir = "(/opt/cni/bin|/usr/lib/cni)"', default)
        for line, private in InstallTests.PRIVATE[version]:
            line = line.replace("{sandbox}", sandbox.group(0) if sandbox else "registry.k8s.io/pause")
            line = line.replace("{cni_dirs}", cni_dirs.group(1) if cni_dirs else "'/opt/cni/bin'")
            line = line.replace("{cni_dir}", cni_dir.group(1) if cni_dir else "/opt/cni/bin")
            if line not in default:
                raise AssertionError(f"containerd's default config has no {line!r}: adapt the test")
            default = default.replace(line, private.format(dir=directory), 1)
        # /opt/containerd (1.6: path = "…"; 2.x: path = '…'), wherever it appears.
        default = re.sub(r"""path = (["'])/opt/containerd\1""", lambda m: f"path = {m.group(1)}{directory}/opt{m.group(1)}", default)
        return version, default

    def setUp(self):
        self.node = CRINode()
        self.addCleanup(self.node.cleanup)

    def install(self, *arguments, check=True):
        node = self.node
        command = [os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "install.sh"),
                   "--from", node.bin, "--containerd-config", node.path("etc", "config.toml"),
                   "--bin-dir", node.path("bin"), "--warden-config", node.path("etc", "warden.toml"), *arguments]
        result = run(command, timeout=60, check=False)
        if check:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result

    def test_install_runs_a_pod_and_uninstall_restores_the_config(self):
        node = self.node
        version, default = self.privatize(run([CONTAINERD, "config", "default"]).stdout, node.dir)
        os.makedirs(node.path("etc"))
        config = node.path("etc", "config.toml")
        with open(config, "w") as file:
            file.write(default)
        original = read_bytes(config)
        # The operator's own Warden config (install.sh keeps an existing one).
        with open(node.path("etc", "warden.toml"), "w") as file:
            file.write(f'runsc = "{RUNSC}"\nroot = "{node.path("warden")}"\n[runsc_config]\nnetwork = "none"\n')

        dry = self.install("--dry-run")
        self.assertIn("+" + self.HANDLER_TABLE[version], dry.stdout)
        self.assertEqual(read_bytes(config), original, "--dry-run changed the config")
        self.assertFalse(os.path.exists(node.path("bin")))

        self.install()
        installed = read_bytes(config)
        self.assertTrue(installed.startswith(original))
        self.assertEqual(read_bytes(config + ".warden-backup"), original)
        self.assertIn("nothing to do", self.install().stdout)
        self.assertEqual(read_bytes(config), installed, "a second install changed the config")

        # containerd with the installed config finds the installed shim (not the build's).
        node.config_path = config
        node.shim_dir = node.path("bin")
        node.start()
        pod_id, containers = node.run_pod("installed", "warden", [("app", SLEEPER)])
        self.assertEqual(node.client.exec_sync(containers[0], ["echo", "via install.sh"]).stdout, b"via install.sh\n")
        shim = node.shim_pids_of(pod_id)
        self.assertEqual(len(shim), 1)
        self.assertEqual(os.readlink(f"/proc/{shim[0]}/exe"), node.path("bin", "containerd-shim-warden-v2"))
        # The operator CLI is installed beside the shim, and sees the pod's shim.
        status = run([node.path("bin", "warden"), "status", "--json", "--config", node.path("etc", "warden.toml")])
        self.assertIn(pod_id, status.stdout)
        node.client.stop_pod(pod_id, timeout=30)
        node.client.remove_pod(pod_id, timeout=30)
        self.assertEqual(node.leaks(), [])
        node.stop_containerd()

        self.install("--uninstall")
        self.assertEqual(read_bytes(config), original, "--uninstall did not restore the original bytes")
        self.assertFalse(os.path.exists(config + ".warden-backup"))
        self.assertFalse(os.path.exists(node.path("bin", "containerd-shim-warden-v2")))
        self.assertFalse(os.path.exists(node.path("bin", "warden")))
        self.assertTrue(os.path.exists(node.path("etc", "warden.toml")), "the operator's warden.toml was removed")
        self.assertIn("nothing to do", self.install("--uninstall").stdout)

    def test_a_config_that_does_not_parse_is_refused_and_left_alone(self):
        node = self.node
        os.makedirs(node.path("etc"))
        config = node.path("etc", "config.toml")
        for text, complaint in [
            (b'version = 2\n[plugins."io.containerd.grpc.v1.cri"\n', b"is not valid TOML"),
            (b'root = "/var/lib/containerd"\n', b"config version 1"),
            (b'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.warden]\n  runtime_type = "io.containerd.runc.v2"\n',
             b"already has a runtime handler 'warden'"),
            # Appending tables would redefine this inline table: refused, not written.
            (b'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  runtimes = { runc = { runtime_type = "io.containerd.runc.v2" } }\n',
             b"not valid TOML"),
        ]:
            with open(config, "wb") as file:
                file.write(text)
            result = self.install(check=False)
            self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
            self.assertIn(complaint.decode(), result.stderr)
            self.assertIn("nothing changed", result.stderr)
            self.assertEqual(read_bytes(config), text)
            self.assertFalse(os.path.exists(config + ".warden-backup"))
            self.assertFalse(os.path.exists(node.path("bin")))


class InstallSnippetTests(unittest.TestCase):
    def test_install_writes_the_shim_config_snippet_of_each_config_version(self):
        """What install.sh appends for version 2 and 3 configs reads as shim-config's snippets."""
        repo = os.path.join(os.path.dirname(__file__), "..", "..")
        shim = os.path.join(os.environ.get("WARDEN_BIN") or build_directory(), "containerd-shim-warden-v2")
        for version, snippet in [(2, "containerd-1.6-1.7.toml"), (3, "containerd-2.x.toml")]:
            with tempfile.TemporaryDirectory(prefix="wcri-snippet-") as work:
                config = os.path.join(work, "config.toml")
                with open(config, "w") as file:
                    file.write(f"version = {version}\n")
                result = run([os.path.join(repo, "scripts", "install.sh"), "--from", os.path.dirname(shim),
                                      "--containerd-config", config, "--bin-dir", os.path.join(work, "bin"),
                                      "--warden-config", os.path.join(work, "warden.toml")], timeout=60, check=False)
                self.assertEqual(result.returncode, 0, result.stderr)
                with open(config, "rb") as file:
                    written = tomllib.load(file)
                plugin = "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"
                options = written["plugins"][plugin]["containerd"]["runtimes"]["warden"]["options"]
                self.assertEqual(options["ConfigPath"], os.path.join(work, "warden.toml"))
                options["ConfigPath"] = "/etc/containerd/warden.toml"  # the snippets' (and the default) path
                with open(os.path.join(repo, "shim-config", snippet), "rb") as file:
                    self.assertEqual(written, tomllib.load(file), snippet)


    def test_sandboxer_shim_is_written_with_the_pause_rootfs_and_refused_before_2x(self):
        """--sandboxer shim: the handler gets `sandboxer = "shim"` and the pause rootfs is
        installed (under --root); --uninstall removes both; a version 2 config (containerd
        1.6/1.7, no Sandbox API) is refused with nothing changed; so is containerd 2.0-2.2
        (its daemon panics on a hostNetwork pod in this mode) unless the operator types
        --accept-hostnetwork-panic, and then the handler has no options (2.0-2.3.0 fail
        StartContainer with them); from 2.3.1 it carries ConfigPath."""
        repo = os.path.join(os.path.dirname(__file__), "..", "..")
        shim = os.path.join(os.environ.get("WARDEN_BIN") or build_directory(), "containerd-shim-warden-v2")
        with tempfile.TemporaryDirectory(prefix="wcri-snippet-") as work:
            source = os.path.join(work, "from")
            os.makedirs(os.path.join(source, "pause-rootfs"))
            shutil.copy(shim, source)
            with open(os.path.join(source, "pause-rootfs", "pause"), "wb") as file:
                file.write(b"\x7fELF pause stand-in")
            host = os.path.join(work, "host")
            os.makedirs(os.path.join(host, "etc", "containerd"))
            config = os.path.join(host, "etc", "containerd", "config.toml")
            install = [os.path.join(repo, "scripts", "install.sh"), "--root", host, "--from", source, "--sandboxer", "shim"]

            def handler():
                with open(config, "rb") as file:
                    return tomllib.load(file)["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["warden"]

            with open(config, "w") as file:
                file.write("version = 2\n")
            refused = run(install + ["--containerd-version", "1.7.24"], timeout=60, check=False)
            self.assertEqual(refused.returncode, 2, refused.stdout + refused.stderr)
            self.assertIn("needs containerd 2.x", refused.stderr)
            self.assertEqual(read_bytes(config), b"version = 2\n")
            with open(config, "w") as file:
                file.write("version = 3\n")
            refused = run(install + ["--containerd-version", "2.1.9"], timeout=60, check=False)
            self.assertEqual(refused.returncode, 2, refused.stdout + refused.stderr)
            self.assertIn("panics", refused.stderr)
            self.assertIn("--accept-hostnetwork-panic", refused.stderr)
            self.assertEqual(read_bytes(config), b"version = 3\n")
            for version, options in [("2.3.4", True), ("2.1.9", False)]:
                result = run(install + ["--containerd-version", version, "--accept-hostnetwork-panic"], timeout=60, check=False)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(handler()["sandboxer"], "shim")
                if options:
                    self.assertEqual(handler()["options"], {"ConfigPath": "/etc/containerd/warden.toml"})
                    removed = run([os.path.join(repo, "scripts", "install.sh"), "--root", host, "--uninstall"], timeout=60, check=False)
                    self.assertEqual(removed.returncode, 0, removed.stderr)
                else:
                    self.assertNotIn("options", handler())
            rootfs = os.path.join(host, "usr", "local", "lib", "warden", "pause-rootfs")
            self.assertEqual(read_bytes(os.path.join(rootfs, "pause")), b"\x7fELF pause stand-in")
            self.assertEqual(sorted(os.listdir(rootfs)), ["dev", "pause", "proc", "sys"])
            # Installing in the other mode over it is refused, naming the way out.
            other = run(install[:-1] + ["podsandbox"], timeout=60, check=False)
            self.assertEqual(other.returncode, 2)
            self.assertIn("--uninstall first", other.stderr)
            removed = run([os.path.join(repo, "scripts", "install.sh"), "--root", host, "--uninstall"], timeout=60, check=False)
            self.assertEqual(removed.returncode, 0, removed.stderr)
            self.assertFalse(os.path.exists(rootfs), os.listdir(os.path.dirname(rootfs)) if os.path.exists(os.path.dirname(rootfs)) else "")
            self.assertEqual(read_bytes(config), b"version = 3\n")


def read_bytes(path):
    with open(path, "rb") as file:
        return file.read()


class NodeImageTests(unittest.TestCase):
    def test_the_node_image_layout_installs_from_itself(self):
        """scripts/build-node-image.sh's layout: /warden/scripts/install.sh finds the shim in
        /warden/bin and the default config in /warden/etc (what the DaemonSet runs)."""
        shim = os.path.join(os.environ.get("WARDEN_BIN") or build_directory(), "containerd-shim-warden-v2")
        with tempfile.TemporaryDirectory(prefix="wcri-image-") as work:
            context, host = os.path.join(work, "context"), os.path.join(work, "host")
            script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "build-node-image.sh")
            result = subprocess.run([script, "--stage-only"], capture_output=True, text=True, timeout=120,
                                    env=dict(os.environ, WARDEN_SHIM_BINARY=shim, WARDEN_IMAGE_CONTEXT=context))
            self.assertEqual(result.returncode, 0, result.stderr)
            os.makedirs(os.path.join(host, "etc", "containerd"))
            with open(os.path.join(host, "etc", "containerd", "config.toml"), "w") as file:
                file.write("version = 2\n")
            # As the image's entrypoint runs it, with the node mounted at --root.
            result = run([os.path.join(context, "warden", "scripts", "install.sh"),
                                  "--root", host, "--from", os.path.join(context, "warden", "bin")], timeout=60, check=False)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(read_bytes(os.path.join(host, "usr", "local", "bin", "containerd-shim-warden-v2")),
                             read_bytes(shim))
            self.assertEqual(read_bytes(os.path.join(host, "usr", "local", "bin", "warden")),
                             read_bytes(os.path.join(os.path.dirname(shim), "warden")))
            self.assertEqual(read_bytes(os.path.join(host, "etc", "containerd", "warden.toml")),
                             read_bytes(os.path.join(os.path.dirname(__file__), "..", "..", "shim-config", "warden.toml")))
            config = read_bytes(os.path.join(host, "etc", "containerd", "config.toml")).decode()
            # The paths written are the host's, not the container's view of them.
            self.assertIn('ConfigPath = "/etc/containerd/warden.toml"', config)
            result = run([os.path.join(context, "warden", "tools", "cri", "warden_cri.py"), "--help"], check=False)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("pods", result.stdout)
