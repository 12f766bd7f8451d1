import Glibc

/// Cgroup filesystem access: where the hierarchies are mounted, which processes a cgroup
/// holds, and removing one. Policy (which cgroups, when) is the caller's.
public enum Cgroups {
    /// One mounted cgroup hierarchy (v1 controller, v1 named, or the v2 unified tree).
    public struct Hierarchy: Equatable, Sendable {
        /// Where it is mounted here.
        public let mountPoint: String
        /// The cgroup the mount shows as its top ("/" on a host; a container sees its own).
        public let root: String
        /// "cgroup" (v1) or "cgroup2".
        public let type: String

        public init(mountPoint: String, root: String, type: String) {
            self.mountPoint = mountPoint
            self.root = root
            self.type = type
        }

        /// The directory of the absolute cgroup path `path` under this mount, or nil when
        /// the mount does not show it.
        public func directory(of path: String) -> String? {
            if root == "/" { return mountPoint + path }
            guard path == root || path.hasPrefix(root + "/") else { return nil }
            return mountPoint + path.dropFirst(root.count)
        }
    }

    /// The cgroup hierarchies among `mounts`, in order.
    public static func hierarchies(in mounts: [Mounts.Entry]) -> [Hierarchy] {
        mounts.filter { $0.type == "cgroup" || $0.type == "cgroup2" }
            .map { Hierarchy(mountPoint: $0.mountPoint, root: $0.root, type: $0.type) }
    }

    /// How many processes of the cgroup at `directory` the kernel's OOM killer has killed:
    /// `oom_kill` of v1's `memory.oom_control` (Linux 4.13+) or of v2's `memory.events`; nil
    /// where the directory has neither (not a memory cgroup).
    public static func oomKills(in directory: String) -> UInt64? {
        for file in ["memory.oom_control", "memory.events"] {
            guard let bytes = FileDescriptor.readAll("\(directory)/\(file)") else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 2, fields[0] == "oom_kill", let count = UInt64(fields[1]) { return count }
            }
        }
        return nil
    }

    /// The hierarchies mounted in this process's mount namespace.
    /// Whether the host runs cgroup v2 alone (`/sys/fs/cgroup` is the unified tree), the
    /// test containerd makes (cgroups.Mode() == Unified) to expect v2 metrics from a shim.
    public static var hostIsUnified: Bool { FileDescriptor.exists("/sys/fs/cgroup/cgroup.controllers") }

    public static func mountedHierarchies() -> [Hierarchy] {
        hierarchies(in: Mounts.current())
    }

    /// The directories of the absolute cgroup path `path` in `hierarchies` (each once; a
    /// hierarchy mounted twice shows the same cgroup twice), whether they exist or not.
    public static func directories(of path: String, in hierarchies: [Hierarchy]) -> [String] {
        var seen: Set<String> = []
        return hierarchies.compactMap { $0.directory(of: path) }.filter { seen.insert($0).inserted }
    }

    /// The processes in cgroup directory `directory` (its `cgroup.procs`); nil when it does not exist.
    public static func processes(in directory: String) -> [Int32]? {
        guard let bytes = FileDescriptor.readAll(directory + "/cgroup.procs", limit: 4 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    }

    /// Moves process `pid` into the cgroup directory `directory` (writes its `cgroup.procs`).
    public static func addProcess(_ pid: Int32, to directory: String) throws(Errno) {
        let fd = try FileDescriptor.open(directory + "/cgroup.procs", forWriting: true)
        defer { FileDescriptor.close(fd) }
        try FileDescriptor.writeAll(fd, Array("\(pid)".utf8))
    }

    /// Kills every process in the v2 cgroup `directory` and its descendants at once, in the
    /// kernel (`cgroup.kill`, Linux 5.14+): nothing can fork its way out. False when the
    /// directory has no `cgroup.kill` (a v1 hierarchy, an older kernel).
    public static func killAll(_ directory: String) throws(Errno) -> Bool {
        guard FileDescriptor.exists(directory + "/cgroup.kill") else { return false }
        let fd = try FileDescriptor.open(directory + "/cgroup.kill", forWriting: true, append: true)
        defer { FileDescriptor.close(fd) }
        try FileDescriptor.writeAll(fd, Array("1".utf8))
        return true
    }

    /// Whether `directory` is a v1 freezer cgroup (it has `freezer.state`).
    public static func isFreezer(_ directory: String) -> Bool {
        FileDescriptor.exists(directory + "/freezer.state")
    }

    /// Freezes (or thaws) a v1 freezer cgroup: `freezer.state` written FROZEN or THAWED.
    /// A frozen process cannot fork or exit; a SIGKILL sent while frozen acts at the thaw.
    public static func setFrozen(_ directory: String, _ frozen: Bool) throws(Errno) {
        let fd = try FileDescriptor.open(directory + "/freezer.state", forWriting: true, append: true)
        defer { FileDescriptor.close(fd) }
        try FileDescriptor.writeAll(fd, Array((frozen ? "FROZEN" : "THAWED").utf8))
    }

    /// The v1 freezer state ("THAWED", "FREEZING", "FROZEN"), nil when unreadable.
    public static func freezerState(_ directory: String) -> String? {
        FileDescriptor.readAll(directory + "/freezer.state", limit: 64).map {
            String(decoding: $0, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        }
    }

    /// Removes the cgroup directory `directory`. One that is already gone is not an error;
    /// one with processes or child cgroups fails with EBUSY.
    public static func remove(_ directory: String) throws(Errno) {
        if rmdir(directory) != 0 && errno != ENOENT { throw Errno.current("rmdir(\(directory))") }
    }
}
