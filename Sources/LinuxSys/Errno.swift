import Glibc

/// A failed syscall: the errno value and the call that produced it.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let call: String

    public init(code: Int32, call: String) {
        self.code = code
        self.call = call
    }

    /// Captures the calling thread's current errno.
    static func current(_ call: String) -> Errno {
        Errno(code: errno, call: call)
    }

    public var description: String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }

    public static let EINTR = Glibc.EINTR
    public static let ENOENT = Glibc.ENOENT
    public static let ENAMETOOLONG = Glibc.ENAMETOOLONG
    public static let EBADF = Glibc.EBADF
    public static let ESRCH = Glibc.ESRCH
    public static let ECHILD = Glibc.ECHILD
    public static let EMFILE = Glibc.EMFILE
    public static let ENFILE = Glibc.ENFILE
}

/// Runs `body` until it succeeds or fails with something other than EINTR.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(Errno) -> T {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let err = errno
        if err == EINTR { continue }
        throw Errno(code: err, call: call)
    }
}
