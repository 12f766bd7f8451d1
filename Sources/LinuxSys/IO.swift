import CLinuxSys
import Glibc

/// Pipes, fifos and raw reads/writes for container stdio.
extension FileDescriptor {
    /// A close-on-exec pipe: (read end, write end).
    public static func pipe() throws(Errno) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        if clinux_pipe(&fds) != 0 { throw Errno.current("pipe2") }
        return (fds[0], fds[1])
    }

    /// Opens (creating, appending) a regular file for writing, as `file://` stdio needs.
    public static func openForAppend(_ path: String) throws(Errno) -> Int32 {
        try retryingEINTR("open(\(path))") { Glibc.open(path, O_CLOEXEC | O_WRONLY | O_CREAT | O_APPEND, 0o644) }
    }

    /// One read into `buffer`; 0 at end of file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingEINTR("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// /dev/null, opened read-write.
    public static func openNull() throws(Errno) -> Int32 {
        try retryingEINTR("open(/dev/null)") { Glibc.open("/dev/null", O_CLOEXEC | O_RDWR) }
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}

extension UnixSocket {
    /// Receives one descriptor sent with SCM_RIGHTS.
    public static func receiveDescriptor(_ fd: Int32) throws(Errno) -> Int32 {
        let received = clinux_receive_fd(fd)
        if received < 0 { throw Errno.current("recvmsg(SCM_RIGHTS)") }
        return received
    }
}

public enum Signals {
    /// A write to a pipe or fifo whose reader is gone must fail with EPIPE, not kill the shim.
    public static func ignoreBrokenPipe() { clinux_ignore_sigpipe() }
}

extension Errno {
    public static let EADDRINUSE = Glibc.EADDRINUSE
}

/// poll(2) on one descriptor.
public enum Poll {
    public static let readable: Int16 = Int16(POLLIN)
    public static let writable: Int16 = Int16(POLLOUT)

    /// The returned events, or 0 on timeout.
    public static func wait(_ fd: Int32, events: Int16, timeoutMilliseconds: Int32) -> Int16 {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let rc = Glibc.poll(&entry, 1, timeoutMilliseconds)
        return rc > 0 ? entry.revents : 0
    }
}

extension Errno {
    public static let EAGAIN = Glibc.EAGAIN
}

extension FileDescriptor {
    /// Opens a fifo for writing without blocking, and keeps it non-blocking: a write that
    /// would block fails with EAGAIN instead (for logs that must never stall the writer).
    public static func openNonBlockingWriter(_ path: String) throws(Errno) -> Int32 {
        try retryingEINTR("open(\(path))") { Glibc.open(path, O_CLOEXEC | O_WRONLY | O_NONBLOCK) }
    }
}

extension FileDescriptor {
    public enum WriteResult: Equatable, Sendable {
        case wrote(Int)
        case wouldBlock
        case failed(Int32)
    }

    /// One write, reporting EAGAIN as `.wouldBlock` (for non-blocking destinations).
    public static func writeSome(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> WriteResult {
        while true {
            let n = Glibc.write(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .wrote(n) }
            if errno == EINTR { continue }
            if errno == EAGAIN { return .wouldBlock }
            return .failed(errno)
        }
    }

    /// Sets O_NONBLOCK.
    public static func setNonBlocking(_ fd: Int32) throws(Errno) {
        let flags = fcntl(fd, F_GETFL)
        if flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 { throw Errno.current("fcntl(O_NONBLOCK)") }
    }

    /// Opens a fifo read-write and non-blocking: never blocks on a missing peer, and a
    /// writer through it never gets EPIPE while containerd is away (as containerd's shims do).
    public static func openFifoReadWriteNonBlocking(_ path: String) throws(Errno) -> Int32 {
        try retryingEINTR("open(\(path))") { Glibc.open(path, O_CLOEXEC | O_RDWR | O_NONBLOCK) }
    }

    /// Opens a fifo for reading without waiting for a writer. The descriptor stays
    /// non-blocking; poll reports POLLHUP only after a writer has come and gone.
    public static func openFifoReaderNonBlocking(_ path: String) throws(Errno) -> Int32 {
        try retryingEINTR("open(\(path))") { Glibc.open(path, O_CLOEXEC | O_RDONLY | O_NONBLOCK) }
    }

    public static func duplicate(_ fd: Int32) throws(Errno) -> Int32 {
        try retryingEINTR("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 3) }
    }
}

extension Errno {
    public static let ETIMEDOUT = Glibc.ETIMEDOUT
}

extension ProcessEnvironment {
    /// This process's environment, as `KEY=value` strings.
    public static var all: [String] {
        var result: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            result.append(String(cString: entry))
            cursor += 1
        }
        return result
    }

    /// The current working directory.
    public static var workingDirectory: String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(cString: buffer)
    }
}

extension FileDescriptor {
    /// Reads a descriptor to EOF (at most `limit` bytes), e.g. stdin.
    public static func readToEnd(_ fd: Int32, limit: Int) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while result.count < limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            result += chunk[0..<count]
        }
        return result
    }

    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// A small file as text; nil if it cannot be read.
    public static func readText(_ path: String) -> String? {
        readAll(path).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension UnixSocket {
    /// Sends one descriptor with SCM_RIGHTS.
    public static func sendDescriptor(_ socket: Int32, _ fd: Int32) throws(Errno) {
        if clinux_send_fd(socket, fd) != 0 { throw Errno.current("sendmsg(SCM_RIGHTS)") }
    }
}
