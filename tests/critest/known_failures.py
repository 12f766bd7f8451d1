"""Why a critest spec fails under Warden, when it does. Every reason is gVisor's (runsc's own
error, its source, or the gVisor issue that says so), the test machine's, or containerd's; none
may be Warden's own: a failure with no entry here fails tests/critest/run_critest.py, and an
entry whose spec passes is reported as stale.

KNOWN_FAILURES: (spec regex, handler regex, containerd version regex, reason).
SKIPPED_SPECS: specs not run at all: (spec regex, handler regex, containerd version regex, why).
"""
import re

GVISOR = "gVisor: "
KNOWN_FAILURES = [
    (r"should support non-recursive readonly mounts", r".", r".",
     GVISOR + "a bind mount is one gofer mount in the sentry, the host's submounts under it included, so a "
     "non-recursive read-only bind makes the host tmpfs under it read-only too (`touch /mnt/tmpfs/file`: "
     "Read-only file system)"),
    (r"Container OOM .*OOMKilled", r".", r".",
     GVISOR + "a container's memory limit is not enforced inside a shared sandbox (its processes run in the "
     "sentry, not in the container's host cgroup), so `dd bs=20M` under a 15 MiB limit is never killed and the "
     "container never exits; Warden's side, reporting OOM kills of the sandbox, is issue 33"),
    (r"should support HostIpc is true", r".", r".",
     GVISOR + "the sandbox has its own System V IPC namespace in the sentry; the host's (hostIPC) cannot be shared "
     "(`ipcs -m` in the container does not list the segment made on the host)"),
    (r"should support HostPID", r".", r".",
     GVISOR + "the sandbox has its own PID namespace in the sentry; host processes are not visible (hostPID)"),
    (r"should support (Privileged is true|adding capability)", r".", r".",
     GVISOR + "creating a bridge (`brctl addbr foobar`, which the spec uses to prove CAP_NET_ADMIN) is not "
     "supported by the sentry's network stack: busybox brctl finds no /sys/class/net"),
    (r"should support (MaskedPaths|ReadonlyPaths)", r".", r".",
     GVISOR + "runsc does not apply OCI linux.maskedPaths or linux.readonlyPaths (google/gvisor#9245)"),
    (r"should allow privilege escalation when false", r".", r".",
     GVISOR + "PR_SET_NO_NEW_PRIVS is always set: runsc logs \"noNewPrivileges ignored. PR_SET_NO_NEW_PRIVS is "
     "assumed to always be set\" (runsc/specutils/specutils.go; google/gvisor#511), so a setuid binary never "
     "raises the effective uid"),
    (r"SeccompProfilePath (should support seccomp (localhost profile|default) on the container|runtime should "
     r"support an seccomp profile that blocks setting hostname)", r".", r".",
     GVISOR + "with --oci-seccomp (Warden's shipped default) runsc installs the profile on the container's own "
     "process tree only; a process started by `runsc exec` (CRI ExecSync, which these specs check with) runs "
     "unfiltered (runsc/boot/loader.go: AppendSyscallFilter only in createContainerProcess)"),
    (r"mount with 'rshared' should support propagation", r".", r".",
     GVISOR + "runsc create refuses it: \"root mount propagation option must specify private or slave: rshared\"; "
     "mounts made in the sentry never reach the host"),
    (r"should support HostNetwork is true", r".", r".",
     GVISOR + "even on the host's network (runsc --network=host) the sentry's /proc/net lists only the sandbox's "
     "own sockets, so `netstat -lnt` in the container cannot show the port the host listens on"),
    (r"port mapping with host port and container port", r".", r".",
     "test network: the test node's CNI config is bridge + host-local without the portmap plugin, so no hostPort "
     "is forwarded (kubelet's nodes run portmap; the same spec with only a container port passes)"),
    (r"should support (safe|unsafe) sysctls", r".", r".",
     GVISOR + "runsc does not apply OCI linux.sysctl (google/gvisor#10790) and the sentry's /proc/sys has no "
     "fs/mqueue/msg_max"),
]

SKIPPED_SPECS = [
    (r"HostNetwork is true|portforward in host network", r"^warden-shim", r"2\.[0-2]\.",
     "containerd: 2.0-2.2 panic (the whole daemon, every pod on the node losing CRI) on RunPodSandbox of a "
     "hostNetwork pod under a `sandboxer = \"shim\"` handler (nil dereference in core/runtime/v2.NewBundle "
     "from the sandbox controller's Create); containerd 2.3 runs it"),
]


def reason_for(spec, handler, containerd_version):
    for pattern, handlers, versions, reason in KNOWN_FAILURES:
        if re.search(pattern, spec) and re.search(handlers, handler) and re.match(versions, containerd_version):
            return reason
    return None
