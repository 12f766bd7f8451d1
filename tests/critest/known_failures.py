"""Why a critest spec fails under Warden, when it does. Every reason is gVisor's (runsc's own
error, its source, or the gVisor issue that says so), the test machine's, or containerd's; none
may be Warden's own: a failure with no entry here fails tests/critest/run_critest.py, and an
entry whose spec passes is reported as stale.

KNOWN_FAILURES: (spec regex, handler regex, release regex, reason).
SKIPPED_SPECS: specs not run at all: (spec regex, handler regex, release regex, why).
A release regex is searched in "containerd <version> runsc <version>" ("containerd 2.1.9 runsc
0.0~20240729.0"): "." for every release.
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
     "container never exits. Warden publishes /tasks/oom when the kernel OOM-kills a sandbox (its cgroup's oom_kill, "
     "tests/cri/test_oom.py), but the 15 MiB limit binds no host process of the sandbox, so no OOM kill happens"),
    (r"should support HostIpc is true", r".", r".",
     GVISOR + "the sandbox has its own System V IPC namespace in the sentry; the host's (hostIPC) cannot be shared "
     "(`ipcs -m` in the container does not list the segment made on the host)"),
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
    # runsc 2022-12-19 (the bookworm set) only.
    (r"should support PodPID", r".", r"runsc 0\.0~2022",
     GVISOR + "runsc 2022-12-19 shares a pod's PID namespace with a container only when the container's namespace "
     "path equals one runsc recorded, and CRI's (/proc/<sandbox pid>/ns/pid) never does, so each container gets "
     "its own and sees itself as pid 1 (runsc/boot/loader.go, startSubcontainer); runsc 2024 shares it"),
    (r"should support dropping capability", r".", r"runsc 0\.0~2022",
     GVISOR + "runsc 2022-12-19's host network stack refuses raw sockets outright (`ping: can't create raw socket: "
     "Address family not supported by protocol`) instead of for want of CAP_NET_RAW"),
    (r"should support adding ALL capabilities|ignore a seccomp profile that blocks setting hostname when privileged|"
     r"mount with '(rprivate|rslave)'", r".", r"runsc 0\.0~2022",
     GVISOR + "runsc 2022-12-19 refuses capabilities newer than its table, which \"ALL\" and privileged containers "
     "get on this kernel: `creating capabilities: unknown capability \"CAP_PERFMON\"` (runsc/specutils/specutils.go)"),
    (r"Idempotence (StopPodSandbox|StopContainer) should not return an error if not found", r".", r"containerd 1\.6\.",
     "containerd: 1.6's CRI answers StopPodSandbox and StopContainer of an unknown id with NotFound (`an error "
     "occurred when try to find sandbox ...: not found`) before any runtime is involved; 1.7 answers them as done"),
    (r"should support (safe|unsafe) sysctls", r".", r".",
     GVISOR + "runsc does not apply OCI linux.sysctl (google/gvisor#10790) and the sentry's /proc/sys has no "
     "fs/mqueue/msg_max"),
]

SKIPPED_SPECS = [
    (r"HostNetwork is true|portforward in host network", r"^warden-shim", r"containerd 2\.[0-2]\.",
     "containerd: 2.0-2.2 panic (the whole daemon, every pod on the node losing CRI) on RunPodSandbox of a "
     "hostNetwork pod under a `sandboxer = \"shim\"` handler (nil dereference in core/runtime/v2.NewBundle "
     "from the sandbox controller's Create); containerd 2.3 runs it"),
]


def reason_for(spec, handler, release):
    """The reason `spec` fails under `handler` on `release` ("containerd X runsc Y"), or None."""
    for pattern, handlers, releases, reason in KNOWN_FAILURES:
        if re.search(pattern, spec) and re.search(handlers, handler) and re.search(releases, release):
            return reason
    return None
