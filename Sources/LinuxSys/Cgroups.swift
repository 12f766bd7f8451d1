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

    /// The cgroup hierarchies in a mountinfo text, in order.
    public static func hierarchies(mountinfo: String) -> [Hierarchy] {
        mountinfo.split(separator: "\n").compactMap { line in
            // "<id> <parent> <major:minor> <root> <mount point> <options> [optional…] - <type> <source> <super options>"
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            let type = String(fields[dash + 1])
            guard type == "cgroup" || type == "cgroup2" else { return nil }
            return Hierarchy(mountPoint: unescape(fields[4]), root: unescape(fields[3]), type: type)
        }
    }

    /// The hierarchies mounted in this process's mount namespace.
    public static func mountedHierarchies() -> [Hierarchy] {
        guard let info = FileDescriptor.readAll("/proc/self/mountinfo", limit: 16 << 20) else { return [] }
        return hierarchies(mountinfo: String(decoding: info, as: UTF8.self))
    }

    /// The processes in cgroup directory `directory` (its `cgroup.procs`); nil when it does not exist.
    public static func processes(in directory: String) -> [Int32]? {
        guard let bytes = FileDescriptor.readAll(directory + "/cgroup.procs", limit: 4 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    }

    /// Moves process `pid` into the cgroup directory `directory` (writes its `cgroup.procs`).
    public static func addProcess(_ pid: Int32, to directory: String) throws(Errno) {
        let path = directory + "/cgroup.procs"
        let fd = try retryingEINTR("open(\(path))") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { _ = close(fd) }
        try FileDescriptor.writeAll(fd, Array("\(pid)".utf8))
    }

    /// Removes the cgroup directory `directory`. One that is already gone is not an error;
    /// one with processes or child cgroups fails with EBUSY.
    public static func remove(_ directory: String) throws(Errno) {
        if rmdir(directory) != 0 && errno != ENOENT { throw Errno.current("rmdir(\(directory))") }
    }

    /// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
    private static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
