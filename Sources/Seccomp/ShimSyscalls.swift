import CSeccomp
import Glibc

/// How the shim confines itself once it serves (warden.toml `[seccomp] mode`).
public enum ConfinementMode: String, Sendable {
    /// No filter.
    case off
    /// A syscall off the list runs and is logged by the kernel (audit type 1326, in dmesg).
    case log
    /// A syscall off the list fails with EPERM (and is logged). Never a kill: a refused
    /// call is an error the shim handles, so a stop in progress still ends in its deadline.
    case enforce
}

/// The serving shim's allow-list and the call that loads it.
///
/// Derived from what the shim does once it serves (docs in README "Seccomp"): the Swift
/// runtime and glibc (memory, threads, futexes, time, randomness), its sockets (ttrpc over
/// unix sockets, rtnetlink in a pod's netns), epoll/eventfd loops, pidfds and waitid for the
/// pod's processes, files and directories (bundles, runsc state, cgroups, logs), mounts of
/// the container rootfs, and prctl/setns. Every process is created by the spawn helper
/// (SpawnHelper), forked before the filter: `execve` is not here, nor is anything that
/// changes the machine rather than the shim's own pod (ptrace, module and kexec loading,
/// bpf, keyctl, reboot, swap, clock setting, chroot, pivot_root, new namespaces).
public enum ShimSyscalls {
    public static let allowed: [String] = [
        // memory
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock", "membarrier",
        // threads, locks, scheduling (clone creates threads; a forked copy of the shim could
        // still not exec anything)
        "clone", "clone3", "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler",
        "getpriority", "setpriority", "exit", "exit_group", "gettid", "arch_prctl", "prlimit64", "getrlimit",
        // signals
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack", "tgkill", "tkill",
        "kill", "pause",
        // time
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
        "timerfd_create", "timerfd_settime", "timerfd_gettime",  // libdispatch's timers (Task.sleep)
        // identity
        "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getpgid", "getsid",
        "getrandom", "uname", "sysinfo", "getrusage",
        // descriptors and I/O
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek", "close",
        "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "pipe", "pipe2", "eventfd2", "signalfd4", "splice",
        "sendfile", "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
        "epoll_pwait", "epoll_pwait2",
        // sockets: ttrpc (unix), rtnetlink
        "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown", "sendto",
        "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "getsockopt", "setsockopt", "getsockname",
        "getpeername",
        // files and directories
        "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs",
        "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
        "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
        "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown",
        "fchown", "fchownat", "lchown", "truncate", "ftruncate", "fsync", "fdatasync", "fallocate",
        "utimensat", "umask", "mknodat", "flock", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
        "fadvise64", "memfd_create",
        // the pod's processes
        "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "waitid", "wait4", "prctl",
        // the pod: rootfs mounts, its network namespace
        "mount", "umount2", "setns",
    ]

    /// Loads the filter for every thread of the process. `off` loads nothing.
    public static func confine(_ mode: ConfinementMode) throws(ConfinementError) {
        let number: Int32
        switch mode {
        case .off: return
        case .log: number = 1
        case .enforce: number = 2
        }
        var unknown: Int32 = -1
        let names = allowed.map { strdup($0) }
        defer { names.forEach { free($0) } }
        let rc = names.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            cseccomp_confine(number, buffer.baseAddress, Int32(buffer.count), &unknown)
        }
        if rc == 0 { return }
        if unknown >= 0 { throw ConfinementError(reason: "syscall \(allowed[Int(unknown)]) is unknown to libseccomp") }
        throw ConfinementError(reason: "seccomp_load: \(String(cString: strerror(-rc))) (errno \(-rc))")
    }

    /// 2 when the calling thread runs under a seccomp filter, 0 when not.
    public static var currentMode: Int32 { cseccomp_current_mode() }
}

public struct ConfinementError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "seccomp: \(reason)" }
}

#if WARDEN_TEST_HOOKS
/// Two calls the filter must refuse, tried from a serving shim by the test-only probe
/// service (ShimCore's SeccompProbe). Each result is "ok" or the errno name it failed with.
public enum RefusalProbe {
    /// ptrace on a process we do not trace: ESRCH when ptrace is allowed, EPERM when refused.
    public static func ptrace(pid: Int32) -> String {
        let code = cseccomp_probe_ptrace(pid)
        return code == 0 ? "ok" : name(code)
    }

    /// execve of `path` in a fresh child (posix_spawn): EPERM under the filter. Without it,
    /// the child runs and exits at once; the shim's orphan sweep reaps it.
    public static func exec(path: String) -> String {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        defer { free(argv[0]) }
        let rc = argv.withUnsafeBufferPointer { posix_spawn(&pid, path, nil, nil, $0.baseAddress!, nil) }
        return rc == 0 ? "ok" : name(rc)
    }

    private static func name(_ code: Int32) -> String {
        switch code {
        case EPERM: "EPERM"
        case ESRCH: "ESRCH"
        case EACCES: "EACCES"
        case ENOSYS: "ENOSYS"
        default: "errno \(code)"
        }
    }
}
#endif
