import Glibc

/// Small file-system helpers for state files (fake-runsc, the shim's bundle files).
public enum Files {
    /// Writes `bytes` to `path` atomically (temp file + rename) with `mode`, creating the
    /// directory (0755) if it is missing.
    public static func write(_ path: String, _ bytes: [UInt8], mode: UInt32) throws(Errno) {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let directory = String(path[..<slash])
            if !FileDescriptor.exists(directory) {
                try Directories.make(directory)
                _ = chmod(directory, 0o755)  // readable by a collector running as another user
            }
        }
        try replace(path, bytes, mode: mode)
    }

    /// Writes `text` to `path` atomically (temp file + rename), mode 0600.
    public static func write(_ path: String, _ text: String) throws(Errno) {
        try replace(path, Array(text.utf8), mode: nil)
    }

    /// A temp file beside `path` (with `mode`, or open's 0600), then rename: a reader sees the
    /// old content or the new, never a part.
    private static func replace(_ path: String, _ bytes: [UInt8], mode: UInt32?) throws(Errno) {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = try FileDescriptor.open(temporary, forWriting: true)
        do throws(Errno) {
            if let mode, fchmod(fd, mode_t(mode)) != 0 { throw Errno.current("fchmod(\(temporary))") }
            try FileDescriptor.writeAll(fd, bytes)
        } catch {
            FileDescriptor.close(fd)
            _ = unlink(temporary)
            throw error
        }
        FileDescriptor.close(fd)
        _ = try retryingEINTR("rename(\(path))") { rename(temporary, path) }
    }

    /// Removes a file; a missing file is not an error.
    public static func remove(_ path: String) {
        _ = unlink(path)
    }
}

public enum Directories {
    /// Removes an empty directory; a missing or non-empty one is left as it is.
    public static func removeIfEmpty(_ path: String) {
        _ = rmdir(path)
    }

    /// mkdir -p with mode 0711.
    public static func make(_ path: String) throws(Errno) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o711) != 0 && errno != EEXIST {
                throw Errno.current("mkdir(\(current))")
            }
        }
    }

    /// A new directory `<base>/<prefix>XXXXXX` (mode 0700, random suffix): private to the caller.
    public static func makeTemporary(in base: String, prefix: String) throws(Errno) -> String {
        var template = Array("\(base)/\(prefix)XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw Errno.current("mkdtemp(\(base)/\(prefix)XXXXXX)") }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes `path` and everything under it, without following symlinks or crossing mounts
    /// (a mount point inside is left, and so is the directory holding it).
    public static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            if Mounts.isMountPoint(path) { return }
            for name in entries(path) { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }

    /// Names in a directory (without . and ..); empty if it cannot be read.
    public static func entries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

public enum Sleep {
    public static func milliseconds(_ count: Int) { usleep(UInt32(count) * 1000) }
    public static func seconds(_ count: Int) { sleep(UInt32(count)) }
}

public enum ProcessEnvironment {
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }
}

extension ChildProcesses {
    /// Signals the process group `pgid` (a process started in its own session).
    public static func signalGroup(_ pgid: Int32, _ signal: Int32) {
        _ = kill(-pgid, signal)
    }

    /// Blocks until the child `pid` exits and reaps it (for single-purpose processes such as
    /// fake-runsc's sandbox; the shim itself waits only through the Supervisor).
    public static func waitBlocking(_ pid: Int32) -> ExitStatus {
        while true {
            if let status = reap(pid) { return status }
            Sleep.milliseconds(5)
        }
    }
}

extension FileDescriptor {
    /// Writes all of `bytes` to a file or pipe.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Errno.current("write")
            }
            offset += written
        }
    }
}

extension ProcessIdentity {
    /// This process's executable (/proc/self/exe), for re-executing itself.
    public static var executablePath: String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Processors online now (at least 1).
    public static var onlineProcessors: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// A file's device and inode: two paths naming the same object (a netns bind mount and
/// /proc/PID/ns/net) have the same identity.
public struct FileIdentity: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    /// Follows symlinks (so /proc/PID/ns/net names the namespace), nil if it cannot be read.
    public static func of(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

public enum FileKind {
    /// Whether `path` is a unix socket (not following a symlink).
    public static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }
}
