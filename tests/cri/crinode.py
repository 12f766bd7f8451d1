"""A private Kubernetes node for Warden's CRI tests: containerd (1.6 by default) with its CRI plugin, under a
temp dir of its own, running in a network namespace the test made (the CNI bridge and veths
live there, never among the host's interfaces), with these runtime handlers:

  warden       Warden driving the real runsc (RUNSC)    (--network=none)
  warden-fake  Warden driving fake-runsc                (faults: file `faults` in its root)
  runc-runsc   containerd's runc shim driving runsc     (what the field runs)
  runc-fake    containerd's runc shim driving fake-runsc
  warden-shim, warden-shim-fake
               (containerd 2.x only) the first two with `sandboxer = "shim"`: CRI hands the
               pod to Warden through the Sandbox API (no pause container or image)

CNI: Debian's bridge + host-local, through wrappers that log every ADD/DEL to `cni.log`.
Images: warden.test/pause:1 (the sandbox image) and warden.test/busybox:latest, imported with
`ctr -n k8s.io images import` (scripts/build-test-image.sh builds them).

Cgroups: each pod's parent is `/<temp dir name>/<pod name>` (kubelet's pod cgroup), so what
runsc makes for its containers sits there in every mounted hierarchy.

Processes are stopped by PID only (containerd's, and those whose command line names the temp
dir); `leaks()` is the audit every test ends with.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "cri"))

from warden_cri import CRIClient, CRIError, container_config, pod_config  # noqa: E402
from nodeaudit import K8S_NAMESPACE, NodeAudit, cgroup_mounts, command_line, console_directories, process_name  # noqa: E402,F401

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "bin")
PAUSE_IMAGE = "warden.test/pause:1"
BUSYBOX_IMAGE = "warden.test/busybox:latest"
CNI_PLUGINS = "/usr/lib/cni"
# The containerd under test: Debian's in /usr/bin, or another release's containerd, ctr and
# containerd-shim-runc-v2 in WARDEN_CONTAINERD_DIR (README "Test").
CONTAINERD_DIR = os.environ.get("WARDEN_CONTAINERD_DIR") or "/usr/bin"
CONTAINERD = os.path.join(CONTAINERD_DIR, "containerd")
CTR = os.path.join(CONTAINERD_DIR, "ctr")
# The real runsc: Debian 12's, or another release's in WARDEN_RUNSC (scripts/releases.sh).
RUNSC = os.environ.get("WARDEN_RUNSC") or "/usr/bin/runsc"


def containerd_version():
    """The containerd under test's (major, minor, patch) (`containerd --version`: "... 2.1.9+unknown")."""
    output = subprocess.run([CONTAINERD, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    numbers = (output[2] if len(output) > 2 else "0").lstrip("v").split("+")[0].split("-")[0].split("~")[0].split(".")
    return tuple(int(number) if number.isdigit() else 0 for number in (numbers + ["0", "0"])[:3])


def containerd_major():
    return containerd_version()[0]


# containerd 2.x can hand a pod to the shim through the Sandbox API (`sandboxer = "shim"`):
# these handlers are Warden's two again in that mode (no pause container, no pause image).
SANDBOX_API = containerd_major() >= 2
# From 2.3.1 (containerd #13360) a shim-sandboxed handler may carry non-runc options: the
# ConfigPath then comes as for the other handlers; before, through a runtime_type wrapper.
SHIM_SANDBOXER_OPTIONS = containerd_version() >= (2, 3, 1)
SHIM_SANDBOXER_HANDLERS = ["warden-shim", "warden-shim-fake"] if SANDBOX_API else []
WARDEN_HANDLERS = ["warden", "warden-fake"] + SHIM_SANDBOXER_HANDLERS


def build_directory():
    """Where `swift build` put containerd-shim-warden-v2 and fake-runsc (WARDEN_BIN overrides)."""
    if os.environ.get("WARDEN_BIN"):
        return os.environ["WARDEN_BIN"]
    output = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    return output.stdout.strip()


def run(command, timeout=30, check=True, **kwargs):
    """A command bounded by `timeout`; its output in the error when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result


def rss_kib(pid, field="VmRSS"):
    """A /proc/PID/status memory field in KiB (VmRSS; RssAnon: the anonymous part, what grows
    when a process leaks), 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def netns_path(info):
    """The network namespace path in a pod's verbose status: the runtime spec CRI wrote (the
    pause container's, under podsandbox), else the sandbox metadata's NetNSPath (containerd
    2.3 gives a shim-sandboxed pod `"runtimeSpec": null`). None when the pod has none."""
    for namespace in ((info.get("runtimeSpec") or {}).get("linux") or {}).get("namespaces") or []:
        if namespace.get("type") == "network" and namespace.get("path"):
            return namespace["path"]
    return ((info.get("sandboxMetadata") or {}).get("Metadata") or {}).get("NetNSPath") or None

class CRINode(NodeAudit):
    handlers = WARDEN_HANDLERS  # the audit's: whose runsc roots it looks in

    def __init__(self, deadlines=None, containerd_config=None, runsc_network="none", registry_hosts=None,
                 port_mappings=False, oci_seccomp=False, containerd_dir=None, shim_options=None):
        """`deadlines`: Warden's [deadlines] (key -> "2s"); `containerd_config`: a containerd
        config text to run with instead of the generated one (install.sh's test);
        `runsc_network`: runsc's --network for Warden's handlers; `registry_hosts`: a
        containerd registry config_path (hosts.toml per registry) for image pulls;
        `port_mappings`: CNI's portmap plugin after the bridge (hostPort, as kubelet's nodes);
        `oci_seccomp`: runsc applies pods' seccomp profiles (as shipped), for Warden's handlers
        and the runc shim's runsc alike; `containerd_dir`: the containerd (and ctr) to run,
        default the set's (the upgrade test starts an older one, then the set's); `shim_options`:
        whether shim-sandboxed handlers carry ConfigPath options (default: when the set's
        containerd takes them, 2.3.1+)."""
        self.containerd_dir = containerd_dir or CONTAINERD_DIR
        # Where containerd's runc shim puts its sockets (the audit's runc_shim_sockets).
        self.shim_socket_directory = "/run/containerd/s" if containerd_version() < (2, 3, 0) else None
        self.shim_options = SHIM_SANDBOXER_OPTIONS if shim_options is None else shim_options
        self.port_mappings = port_mappings
        self.oci_seccomp = oci_seccomp
        self.runsc_network = runsc_network
        self.registry_hosts = registry_hosts
        self.bin = build_directory()
        self.shim_dir = self.bin  # first on containerd's PATH: where it finds the shim
        self.dir = tempfile.mkdtemp(prefix="wcri-")
        self.shim_socket_directory = self.shim_socket_directory or self.path("state", "s")
        self.socket = os.path.join(self.dir, "c.sock")
        self.netns = "wcri-" + uuid.uuid4().hex[:8]
        self.cgroup_root = "/" + os.path.basename(self.dir)
        self.containerd = None
        self.client = None
        self.pod_netns_paths = set()
        self.pod_handlers = {}  # pod id -> runtime handler, of every pod run_pod made
        self.pod_configs = {}  # pod id -> its PodSandboxConfig, for containers added later
        # The shims' console socket directories for long ids (/tmp/warden-pty-*): any this
        # node's pods leave are leaks (containerd's TMPDIR stays the host's: runsc 2022 under
        # the runc shim cannot start a sandbox with TMPDIR under the node's directory).
        self.console_directories_before = console_directories()
        self.deadlines = {"runsc_call_timeout": "2s", "kill_grace": "1s", "stop_deadline": "5s",
                          "delete_deadline": "5s", **(deadlines or {})}
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        self._write_cni()
        self._write_runtimes()
        self.config_path = os.path.join(self.dir, "config.toml")
        with open(self.config_path, "w") as file:
            file.write(containerd_config or self.containerd_config())

    # Set-up

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _write_cni(self):
        os.makedirs(self.path("cni-bin"))
        os.makedirs(self.path("cni-conf"))
        for plugin in ["bridge", "host-local", "loopback", "portmap"]:
            wrapper = self.path("cni-bin", plugin)
            with open(wrapper, "w") as file:
                file.write(f'#!/bin/sh\necho "$CNI_COMMAND {plugin} $CNI_CONTAINERID $CNI_NETNS" >> {self.path("cni.log")}\n'
                           f'exec {CNI_PLUGINS}/{plugin}\n')
            os.chmod(wrapper, 0o755)
        network = {
            "cniVersion": "0.4.0", "name": "warden-test",
            "plugins": [{
                "type": "bridge", "bridge": "wcri0", "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                         "dataDir": self.path("ipam")},
            }],
        }
        if self.port_mappings:
            network["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
        with open(self.path("cni-conf", "10-warden-test.conflist"), "w") as file:
            json.dump(network, file)

    def _write_runtimes(self):
        # The pause rootfs of the shim sandboxer's pods, laid out as scripts/build-shim.sh ships it.
        rootfs = self.path("pause-rootfs")
        for directory in ["proc", "dev", "sys"]:
            os.makedirs(os.path.join(rootfs, directory))
        shutil.copy(os.path.join(FIXTURES, "pause"), os.path.join(rootfs, "pause"))
        fake = os.path.join(self.bin, "fake-runsc")
        for name in WARDEN_HANDLERS:
            runsc = fake if name.endswith("-fake") else RUNSC
            deadlines = "".join(f'{key} = "{value}"\n' for key, value in self.deadlines.items())
            with open(self.path(f"{name}.toml"), "w") as file:
                file.write(f'runsc = "{runsc}"\nroot = "{self.path(name)}"\n[deadlines]\n{deadlines}'
                           f'[runsc_config]\nnetwork = "{self.runsc_network}"\n{"oci-seccomp = true" if self.oci_seccomp else ""}\n'
                           f'[metrics]\ndir = "{self.path("metrics")}"\n'
                           f'[sandbox]\npause_rootfs = "{rootfs}"\n')
            os.makedirs(self.path(name))
        for name in SHIM_SANDBOXER_HANDLERS:
            with open(self.path(name + "-shim"), "w") as file:
                file.write(f'#!/bin/sh\nWARDEN_CONFIG_PATH={self.path(name + ".toml")} '
                           f'exec {os.path.join(self.bin, "containerd-shim-warden-v2")} "$@"\n')
            os.chmod(self.path(name + "-shim"), 0o755)
        self.write_runc_runsc_wrapper()

    def write_runc_runsc_wrapper(self):
        """runsc as the runc shim's runtime binary, with the flags Warden's handlers give it."""
        with open(self.path("runsc-wrapped"), "w") as file:
            seccomp = " --oci-seccomp=true" if self.oci_seccomp else ""
            file.write(f'#!/bin/sh\nexec {RUNSC} --network={self.runsc_network}{seccomp} "$@"\n')
        os.chmod(self.path("runsc-wrapped"), 0o755)

    def containerd_config(self):
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        runtimes = f"{cri}.containerd.runtimes"
        text = f'''version = 2
root = "{self.path("root")}"
state = "{self.path("state")}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{self.socket}"
{self._socket_dir_config()}[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The test machines lack CAP_SYS_RESOURCE: runsc under the runc shim (the comparison
  # handlers) could not set the sandbox's -998. Warden would clamp it itself (OOMScoreClamp,
  # tested through ctr in OOMScoreAdjTests), but this setting is containerd-wide.
  restrict_oom_score_adj = true
[{cri}.cni]
  bin_dir = "{self.path("cni-bin")}"
  conf_dir = "{self.path("cni-conf")}"
{self._registry_config(cri)}[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "warden"
'''
        for name in ["warden", "warden-fake"]:
            text += f'''[{runtimes}.{name}]
  runtime_type = "io.containerd.warden.v2"
[{runtimes}.{name}.options]
  ConfigPath = "{self.path(name + ".toml")}"
'''
        for name in SHIM_SANDBOXER_HANDLERS:
            if self.shim_options:
                text += f'''[{runtimes}.{name}]
  runtime_type = "io.containerd.warden.v2"
  sandboxer = "shim"
[{runtimes}.{name}.options]
  ConfigPath = "{self.path(name + ".toml")}"
'''
                continue
            # No options table: containerd 2.0-2.3.0 fail StartContainer of a shim-sandboxed pod
            # whose handler has options of a type other than runc's (PR #12986; fixed by
            # #13360). The config path comes through the environment instead, from a
            # runtime_type wrapper.
            text += f'''[{runtimes}.{name}]
  runtime_type = "{self.path(name + "-shim")}"
  sandboxer = "shim"
'''
        for name, binary in [("runc-runsc", self.path("runsc-wrapped")), ("runc-fake", os.path.join(self.bin, "fake-runsc"))]:
            text += f'''[{runtimes}.{name}]
  runtime_type = "io.containerd.runc.v2"
[{runtimes}.{name}.options]
  BinaryName = "{binary}"
  Root = "{self.path(name)}"
'''
        return text

    def _socket_dir_config(self):
        """containerd 2.3+ tells each shim where its socket goes (BootstrapParams socket_dir),
        /run/containerd/s by default whatever its state dir: the node keeps them in its own
        `<state>/s`, where they were before 2.3 (and where the upgrade test's 2.1 put them)."""
        if containerd_version() < (2, 3, 0):
            return ""
        return f'[plugins."io.containerd.shim.v1.manager"]\n  socket_dir = "{self.path("state", "s")}"\n'

    def _registry_config(self, cri):
        if not self.registry_hosts:
            return ""
        return f'[{cri}.registry]\n  config_path = "{self.registry_hosts}"\n'

    # containerd

    def start(self, import_images=True, timeout=30):
        log = open(self.path("containerd.log"), "a")
        # The shim first, then the containerd under test's own runc shim.
        environment = dict(os.environ, PATH=f"{self.shim_dir}:{self.containerd_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.containerd = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.netns}", os.path.join(self.containerd_dir, "containerd"),
             "--config", self.config_path],
            stdout=log, stderr=subprocess.STDOUT, env=environment)
        log.close()
        self.client = CRIClient(self.socket, timeout=30)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.containerd.poll() is not None:
                    raise RuntimeError(f"containerd exited {self.containerd.returncode}: {self.log_tail()}")
                self.client.version()
                break
            except CRIError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"containerd's CRI did not answer within {timeout}s: {self.log_tail()}")
                time.sleep(0.1)
        if import_images:
            for image in ["pause-image.tar", "busybox-image.tar"]:
                self.ctr("images", "import", os.path.join(FIXTURES, image), timeout=60)
        return self

    def stop_containerd(self, timeout=15):
        if self.containerd is None:
            return
        self.containerd.send_signal(signal.SIGTERM)
        try:
            self.containerd.wait(timeout)
        except subprocess.TimeoutExpired:
            self.containerd.kill()
            self.containerd.wait(5)
        self.containerd = None
        if self.client:
            self.client.close()
            self.client = None

    def restart_containerd(self):
        self.stop_containerd()
        self.start(import_images=False)

    def ctr(self, *arguments, timeout=30, check=True):
        return run([os.path.join(self.containerd_dir, "ctr"), "-a", self.socket, "-n", K8S_NAMESPACE, *arguments], timeout=timeout, check=check)

    def log_tail(self, lines=30):
        try:
            with open(self.path("containerd.log")) as file:
                return "".join(file.readlines()[-lines:])
        except OSError:
            return ""

    def log_text(self):
        with open(self.path("containerd.log")) as file:
            return file.read()

    # Pods

    def run_pod(self, name, handler, containers=(), timeout=60, configure=None):
        """RunPodSandbox, then CreateContainer + StartContainer for each (name, command);
        `configure(config)` changes the PodSandboxConfig first."""
        config = pod_config(name, uid=f"{name}-{uuid.uuid4().hex[:6]}", cgroup_parent=f"{self.cgroup_root}/{name}")
        if configure:
            configure(config)
        pod_id = self.client.run_pod(config, handler, timeout=timeout)
        self.pod_handlers[pod_id] = handler
        self.pod_configs[pod_id] = config
        self.record_netns(pod_id)
        ids = []
        for container_name, command in containers:
            container_id = self.client.create_container(pod_id, container_config(container_name, BUSYBOX_IMAGE, command),
                                                        config, timeout=timeout)
            self.client.start_container(container_id, timeout=timeout)
            ids.append(container_id)
        return pod_id, ids

    def record_netns(self, pod_id):
        """The pod's netns path, for the leak audit."""
        path = netns_path(json.loads(self.client.pod_status(pod_id, verbose=True).info.get("info", "{}")))
        if path:
            self.pod_netns_paths.add(path)

    def pid_of(self, container_id):
        """The host pid containerd reports for a task (runsc-sandbox's for the pod sandbox)."""
        output = self.ctr("tasks", "ls").stdout.splitlines()[1:]
        for line in output:
            fields = line.split()
            if fields and fields[0] == container_id:
                return int(fields[1])
        raise RuntimeError(f"no task {container_id} in ctr tasks ls: {output}")

    def sandbox_pid_of(self, pod_id):
        """runsc-sandbox's pid for a pod: its task's under `podsandbox`; under the shim
        sandboxer the pod is no task, and its sandbox is found by name and by the pod's runsc
        root (`<root>/<namespace>/<pod>`) on its command line."""
        if self.pod_handlers.get(pod_id) not in SHIM_SANDBOXER_HANDLERS:
            return self.pid_of(pod_id)
        for pid, _, line in self.our_processes():
            # runsc re-executes itself: its comm is "exe", its argv[0] names the role.
            if line.startswith("runsc-sandbox ") and pod_id in line:
                return pid
        raise RuntimeError(f"no runsc-sandbox of pod {pod_id}: {self.our_processes()}")

    def cni_log(self):
        try:
            with open(self.path("cni.log")) as file:
                return file.read().splitlines()
        except OSError:
            return []

    def set_fault(self, handler, fault):
        """fake-runsc's fault for every runsc call under this handler from now on ('' clears)."""
        root = self.path(handler) if handler.startswith("warden") else self.path(handler, K8S_NAMESPACE)
        os.makedirs(root, exist_ok=True)
        if fault:
            with open(os.path.join(root, "faults"), "w") as file:
                file.write(fault + "\n")
        elif os.path.exists(os.path.join(root, "faults")):
            os.remove(os.path.join(root, "faults"))

    # What this node runs, and what it left
