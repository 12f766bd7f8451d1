import CLinuxSys
import Glibc

/// Credentials of the process at the other end of a Unix socket (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
}

/// Blocking Unix stream sockets. Descriptors are plain `Int32`s owned by the caller,
/// created close-on-exec so spawned runsc processes never inherit them.
public enum UnixSocket {
    /// Creates a listening socket at `path` with permissions `mode` (0600: containerd runs as
    /// root and is the only intended client). A stale socket file left at `path` is replaced,
    /// unless `replaceExisting` is false: then an existing file fails with EADDRINUSE.
    public static func listen(
        path: String, mode: mode_t = 0o600, backlog: Int32 = 128, replaceExisting: Bool = true
    ) throws(Errno) -> Int32 {
        let fd = try retryingEINTR("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            if replaceExisting { _ = unlink(path) }
            _ = try retryingEINTR("bind(\(path))") { clinux_bind_unix(fd, path) }
            _ = try retryingEINTR("chmod(\(path))") { chmod(path, mode) }
            _ = try retryingEINTR("listen(\(path))") { Glibc.listen(fd, backlog) }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Accepts one connection; blocks. Fails with EBADF/EINVAL once the listener is shut down.
    public static func accept(_ listener: Int32) throws(Errno) -> Int32 {
        try retryingEINTR("accept4") { clinux_accept_cloexec(listener) }
    }

    /// Connects to the Unix socket at `path`. A `unix://` prefix is accepted and stripped.
    /// `nonBlocking`: the socket is made non-blocking first, so a listener whose backlog is
    /// full (a server that stopped accepting) fails at once with EAGAIN instead of blocking.
    public static func connect(path: String, nonBlocking: Bool = false) throws(Errno) -> Int32 {
        let target = path.hasPrefix("unix://") ? String(path.dropFirst("unix://".count)) : path
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = try retryingEINTR("socket") { socket(AF_UNIX, flags, 0) }
        do {
            _ = try retryingEINTR("connect(\(target))") { clinux_connect_unix(fd, target) }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Reads up to `buffer.count` bytes. Returns 0 at end of stream.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingEINTR("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes all of `bytes`, looping over short writes. Never raises SIGPIPE.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw Errno.current("send")
            }
            offset += written
        }
    }

    /// One non-blocking send (no SIGPIPE): what the socket took now, `.wouldBlock` when its
    /// buffer is full, `.failed` when the peer is gone.
    public static func sendSome(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> FileDescriptor.WriteResult {
        while true {
            let written = send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if written >= 0 { return .wrote(written) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed(errno)
        }
    }

    /// Wakes any thread blocked in read/accept on `fd` without releasing the descriptor number.
    public static func shutdown(_ fd: Int32, reading: Bool = true, writing: Bool = true) {
        let how: Int32 = switch (reading, writing) {
        case (true, true): Int32(SHUT_RDWR)
        case (true, false): Int32(SHUT_RD)
        case (false, _): Int32(SHUT_WR)
        }
        _ = Glibc.shutdown(fd, how)
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public static func peerCredentials(_ fd: Int32) throws(Errno) -> PeerCredentials {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        _ = try retryingEINTR("getsockopt(SO_PEERCRED)") { clinux_peer_credentials(fd, &pid, &uid, &gid) }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// Removes a socket file; a missing file is not an error.
    public static func remove(path: String) {
        _ = unlink(path)
    }
}

/// Identity of the running process.
public enum ProcessIdentity {
    public static var uid: UInt32 { getuid() }
    public static var pid: Int32 { getpid() }

    /// CAP_SYS_RESOURCE: needed to lower an oom_score_adj below the process's own.
    public static let capSysResource = 24

    /// Whether `capability` is in this process's effective set (/proc/self/status CapEff).
    public static func hasEffectiveCapability(_ capability: Int) -> Bool {
        guard let status = FileDescriptor.readText("/proc/self/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }, radix: 16)
        else { return false }
        return mask & (1 << UInt64(capability)) != 0
    }

    /// This process's /proc/self/oom_score_adj.
    public static var oomScoreAdj: Int? {
        FileDescriptor.readText("/proc/self/oom_score_adj").flatMap { Int($0.filter { !$0.isWhitespace }) }
    }
}
