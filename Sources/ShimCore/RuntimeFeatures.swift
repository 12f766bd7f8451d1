/// The OCI runtime features document (runtime-spec features.md) of the runtime Warden drives,
/// as `-info` reports it. Each list is what gVisor's runsc applies, read from its source
/// (golang-gvisor-gvisor-dev, runsc 2022-12-19; the same in 2024-07-29 for these lists):
///
/// - hooks: prestart, createRuntime, poststart, poststop run (runsc/container/container.go);
///   createContainer and startContainer are skipped with a warning, so not claimed.
/// - mountOptions: the sentry applies ro/rw, noatime/atime, noexec/exec and treats bind/rbind
///   as a bind mount (runsc/boot/vfs.go parseMountOptions); every other option is ignored
///   with a warning, so none is claimed: in particular no "rro", so CRI never offers
///   recursive read-only mounts on Warden's handlers.
/// - namespaces: the sandbox's own kernel gives each pod pid, ipc, uts, mount and network
///   namespaces; user namespaces with id mappings are not honoured (no idmap), so CRI's
///   user-namespace support stays off.
/// - seccomp: an OCI seccomp profile is applied inside the sandbox only with runsc's
///   `--oci-seccomp` (the `[runsc] oci-seccomp` setting).
struct RuntimeFeatures: Equatable {
    var ociVersionMin = "1.0.0"
    var ociVersionMax = "1.1.0"
    var hooks: [String]
    var mountOptions: [String]
    var namespaces: [String]
    var capabilities: [String]
    var seccomp: Bool

    static func gVisor(ociSeccomp: Bool) -> RuntimeFeatures {
        RuntimeFeatures(
            hooks: ["prestart", "createRuntime", "poststart", "poststop"],
            mountOptions: ["atime", "bind", "exec", "noatime", "noexec", "rbind", "ro", "rw"],
            namespaces: ["ipc", "mount", "network", "pid", "uts"],
            capabilities: linuxCapabilities,
            seccomp: ociSeccomp)
    }

    /// Every capability a container may be given (gVisor's kernel models them all).
    static let linuxCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// The document as JSON (containerd decodes the `features.Features` Any as JSON).
    var json: String {
        func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        return """
            {"ociVersionMin":"\(ociVersionMin)","ociVersionMax":"\(ociVersionMax)","hooks":\(list(hooks)),\
            "mountOptions":\(list(mountOptions)),"linux":{"namespaces":\(list(namespaces)),\
            "capabilities":\(list(capabilities)),"cgroup":{"v1":true,"v2":true,"systemd":false,"systemdUser":false},\
            "seccomp":{"enabled":\(seccomp)},"apparmor":{"enabled":false},"selinux":{"enabled":false},\
            "intelRdt":{"enabled":false},"mountExtensions":{"idmap":{"enabled":false}}}}
            """
    }
}
