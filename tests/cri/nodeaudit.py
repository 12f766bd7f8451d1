"""The CRI node's leak audit and cleanup (CRINode's half that looks at the machine): what the
node's pods and shims left (processes, mounts, netns, runsc state, CNI addresses, cgroups,
sockets, console directories, metrics files), found only among what this node made, and its
removal by pid, path and hash. Nothing here starts anything."""
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "cri"))

from warden_cri import CRIError  # noqa: E402

K8S_NAMESPACE = "k8s.io"


def cgroup_mounts():
    """Mount points of the cgroup hierarchies (v1 and v2) that show the whole tree."""
    mounts = []
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            if " - " not in line:
                continue
            fstype = line.split(" - ", 1)[1].split()[0]
            if fstype in ("cgroup", "cgroup2") and fields[3] == "/":
                mounts.append(fields[4])
    return mounts


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_name(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split("(", 1)[1].rsplit(")", 1)[0]
    except OSError:
        return ""


def crash_summary(path):
    """A shim's crash record (`<namespace>_<pod>.crash.json`) in one line."""
    try:
        with open(path) as file:
            crash = json.load(file)
        return f"{crash['process']} pid {crash['pid']} {crash['status']}: {crash['detail']} (reason {crash['reason']})"
    except (OSError, ValueError, KeyError) as error:
        return f"unreadable: {error}"


def console_directories():
    """The private directories Warden's shims make in /tmp for console sockets of long ids."""
    try:
        return {name for name in os.listdir("/tmp") if name.startswith("warden-pty-")}
    except OSError:
        return set()


class NodeAudit:
    """Mixed into CRINode: uses its dir, netns, socket, handlers, containerd and client."""

    def our_processes(self):
        """(pid, name, command line) of every process naming the temp dir, containerd aside."""
        found = []
        containerd_pid = self.containerd.pid if self.containerd else None
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (os.getpid(), containerd_pid):
                continue
            line = command_line(entry)
            if self.dir in line:
                found.append((int(entry), process_name(entry), line))
        return found

    def shim_pids(self):
        return [pid for pid, name, _ in self.our_processes() if name.startswith("containerd-shim")]

    def shim_pids_of(self, pod_id):
        return [pid for pid, name, line in self.our_processes() if name.startswith("containerd-shim") and pod_id in line]

    def our_mounts(self):
        with open("/proc/self/mountinfo") as file:
            mounts = [line.split()[4] for line in file]
        return [m for m in mounts if m.startswith(self.dir) or m in self.pod_netns_paths]

    def cgroup_dirs(self):
        """Every directory under this node's cgroup root, in every mounted hierarchy, deepest
        first: (path, depth below the root)."""
        found = []
        for mount in cgroup_mounts():
            top = mount + self.cgroup_root
            for path, _, _ in os.walk(top):
                depth = 0 if path == top else path[len(top):].count("/")
                found.append((path, depth))
        return sorted(found, key=lambda entry: -entry[1])

    def leaked_cgroups(self):
        """Container cgroups still there (depth 2: <root>/<pod>/<container>), as
        {cgroup path: hierarchies}; the pod level is kubelet's, like the root."""
        leaked = {}
        for mount in cgroup_mounts():
            top = mount + self.cgroup_root
            for path, _, _ in os.walk(top):
                relative = path[len(mount):]
                if path != top and path[len(top):].count("/") >= 2:
                    leaked.setdefault(relative, []).append(os.path.basename(mount))
        return leaked

    def remove_cgroups(self, keep_pods=True):
        """Removes container cgroups (and with keep_pods=False everything under the root, the
        root too), SIGKILLing by PID what is still in them: only this node's pods run there."""
        for path, depth in self.cgroup_dirs():
            if keep_pods and depth < 2:
                continue
            for _ in range(50):
                try:
                    with open(os.path.join(path, "cgroup.procs")) as file:
                        pids = [int(line) for line in file if line.strip()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)

    def leaks(self, wait=5.0):
        """What the node left (containerd still running is not a leak): processes, mounts, pod
        netns, shim sockets, runsc state, CNI IP allocations and container cgroups. Waits up to
        `wait` seconds for shims that are on their way out."""
        deadline = time.monotonic() + wait
        while True:
            found = []
            found += [f"process {pid} {name}: {line[:160]}" for pid, name, line in self.our_processes()]
            found += [f"mount {mount}" for mount in self.our_mounts()]
            found += [f"pod netns {path}" for path in sorted(self.pod_netns_paths) if os.path.exists(path)]
            for handler in self.handlers + ["runc-runsc", "runc-fake"]:
                for root, _, files in os.walk(self.path(handler)):
                    found += [f"runsc state {os.path.join(root, f)}" for f in files
                              if f not in ("faults", "fault-log", "shim")]
            ipam = self.path("ipam", "warden-test")
            if os.path.isdir(ipam):
                found += [f"CNI address {a}" for a in os.listdir(ipam) if a[0].isdigit()]
            found += [f"cgroup {path} in {len(where)} hierarchies" for path, where in sorted(self.leaked_cgroups().items())]
            found += [f"socket {path}" for path in self.our_sockets()]
            found += [f"temp dir /tmp/{name}" for name in sorted(console_directories() - self.console_directories_before)]
            metrics = self.path("metrics")
            if os.path.isdir(metrics):
                for name in sorted(os.listdir(metrics)):
                    path = os.path.join(metrics, name)
                    # A crash record is kept on purpose (warden doctor lists it), so one here
                    # is a sandbox that crashed during the run: named with its reason.
                    found.append(f"sandbox crash recorded in {path}: {crash_summary(path)}"
                                 if name.endswith(".crash.json") else f"metrics file {path}")
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def our_sockets(self):
        """Sockets under the node's dir (shims', runsc's control sockets, consoles), containerd's
        own aside, and the runc shim sockets of this node's pods (before containerd 2.3 under
        /run/containerd/s whatever its state dir is)."""
        found = []
        for root, _, files in os.walk(self.dir):
            for name in files:
                path = os.path.join(root, name)
                if path.startswith(self.socket):
                    continue  # containerd's c.sock and c.sock.ttrpc
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
                except OSError:
                    pass
        return found + [path for path in self.runc_shim_sockets() if os.path.exists(path)]

    def runc_shim_sockets(self):
        """Where containerd's runc shim serves each runc pod of this node: its shim library names
        the socket <shim socket dir>/<sha256 of "<containerd address>/<namespace>/<id>"> (the dir
        is /run/containerd/s before containerd 2.3 whatever the state dir, and the node's own
        `socket_dir` from 2.3: CRINode.shim_socket_directory)."""
        return [os.path.join(self.shim_socket_directory, hashlib.sha256(f"{self.socket}/{K8S_NAMESPACE}/{pod_id}".encode()).hexdigest())
                for pod_id, handler in self.pod_handlers.items() if handler.startswith("runc")]

    def remove_runc_shim_sockets(self):
        """The sockets a killed runc shim of this node's left (only this node's, by their hash)."""
        for path in self.runc_shim_sockets():
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def kill_processes_of(self, pod_id):
        """SIGKILL (after SIGCONT) every process of ours whose command line names the pod."""
        for pid, _, line in self.our_processes():
            if pod_id in line:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass

    def clear_runsc_state(self, handler):
        """Removes the state a runtime left under its runsc root (faults file included)."""
        shutil.rmtree(self.path(handler), ignore_errors=True)
        os.makedirs(self.path(handler))

    def cleanup(self):
        """Everything this node started goes, by PID; then its mounts, netns and directory."""
        if self.containerd is not None and self.client is not None:
            try:
                for pod in self.client.pods(timeout=10):
                    try:
                        self.client.stop_pod(pod.id, timeout=15)
                        self.client.remove_pod(pod.id, timeout=15)
                    except CRIError:
                        pass
            except CRIError:
                pass
        self.stop_containerd()
        self.remove_runc_shim_sockets()
        for pid, _, _ in self.our_processes():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.2)
        for mount in sorted(self.our_mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10)
        for path in self.pod_netns_paths:
            if os.path.exists(path):
                subprocess.run(["umount", "-l", path], capture_output=True, timeout=10)
                try:
                    os.remove(path)
                except OSError:
                    pass
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, timeout=10)
        self.remove_cgroups(keep_pods=False)
        shutil.rmtree(self.dir, ignore_errors=True)
