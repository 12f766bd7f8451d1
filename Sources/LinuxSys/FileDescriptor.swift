import CLinuxSys
import Glibc

/// Plain file descriptors for process stdio.
public enum FileDescriptor {
    /// Opens `path` close-on-exec: read-only, or write-only creating/truncating it (0600).
    public static func open(_ path: String, forWriting: Bool = false, append: Bool = false) throws(Errno) -> Int32 {
        var flags = O_CLOEXEC
        if forWriting {
            flags |= O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
        } else {
            flags |= O_RDONLY
        }
        return try retryingEINTR("open(\(path))") { Glibc.open(path, flags, 0o600) }
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Reads a whole (small) file; nil if it cannot be read.
    public static func readAll(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        guard let fd = try? open(path) else { return nil }
        defer { close(fd) }
        return readToEnd(fd, limit: limit)
    }
}
