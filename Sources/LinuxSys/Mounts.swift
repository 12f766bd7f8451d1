import CLinuxSys
import Glibc

/// mount(2)/umount2(2).
public enum Mounts {
    public static func mount(source: String, target: String, type: String, flags: UInt, data: String) throws(Errno) {
        if clinux_mount(source, target, type, flags, data.isEmpty ? nil : data) != 0 {
            throw Errno.current("mount(\(type) \(source) on \(target))")
        }
    }

    /// Unmounts `target`; `detach` is MNT_DETACH. Not mounted (EINVAL) or missing (ENOENT) is success.
    public static func unmount(_ target: String, detach: Bool = false) throws(Errno) {
        if clinux_unmount(target, detach ? Int32(MNT_DETACH) : 0) != 0 {
            if errno == EINVAL || errno == ENOENT { return }
            throw Errno.current("umount(\(target))")
        }
    }

    /// One line of mountinfo: what is mounted where.
    public struct Entry: Equatable, Sendable {
        /// The directory of the filesystem the mount shows as its top.
        public let root: String
        public let mountPoint: String
        public let type: String

        public init(root: String, mountPoint: String, type: String) {
            self.root = root
            self.mountPoint = mountPoint
            self.type = type
        }
    }

    /// The mounts in a mountinfo text, in order.
    public static func entries(mountinfo: String) -> [Entry] {
        mountinfo.split(separator: "\n").compactMap { line in
            // "<id> <parent> <major:minor> <root> <mount point> <options> [optional…] - <type> <source> <super options>"
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            return Entry(root: unescape(fields[3]), mountPoint: unescape(fields[4]), type: String(fields[dash + 1]))
        }
    }

    /// The mounts of this process's mount namespace (/proc/self/mountinfo).
    public static func current() -> [Entry] {
        guard let info = FileDescriptor.readAll("/proc/self/mountinfo", limit: 16 << 20) else { return [] }
        return entries(mountinfo: String(decoding: info, as: UTF8.self))
    }

    /// Whether `path` is a mount point.
    public static func isMountPoint(_ path: String) -> Bool {
        current().contains { $0.mountPoint == path }
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

    public static let readOnly: UInt = UInt(MS_RDONLY)
    public static let noSuid: UInt = UInt(MS_NOSUID)
    public static let noDev: UInt = UInt(MS_NODEV)
    public static let noExec: UInt = UInt(MS_NOEXEC)
    public static let bind: UInt = UInt(MS_BIND)
    public static let recursive: UInt = UInt(MS_REC)
    public static let noAtime: UInt = UInt(MS_NOATIME)
    public static let relAtime: UInt = UInt(MS_RELATIME)
    public static let strictAtime: UInt = UInt(MS_STRICTATIME)
    public static let noDirAtime: UInt = UInt(MS_NODIRATIME)
    public static let synchronous: UInt = UInt(MS_SYNCHRONOUS)
}
