import Glibc

/// Unbuffered process output: a line reaches the pipe before the call returns, which
/// `start` (containerd reads its combined output) and readiness lines rely on.
public enum Console {
    public static func output(_ line: String) { write(line, to: 1) }
    public static func error(_ line: String) { write(line, to: 2) }
    /// Exactly these bytes on stdout, no newline: a protobuf answer (`start`'s BootstrapResult,
    /// `-info`'s RuntimeInfo) must be the whole output.
    public static func outputBytes(_ bytes: [UInt8]) { write(bytes: bytes[...], to: 1) }

    private static func write(_ line: String, to fd: Int32) {
        var text = line
        if !text.hasSuffix("\n") { text += "\n" }
        write(bytes: Array(text.utf8)[...], to: fd)
    }

    private static func write(bytes: ArraySlice<UInt8>, to fd: Int32) {
        var bytes = bytes
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

public func exit(_ status: Int32) -> Never {
    Glibc.exit(status)
}

/// Ends the process at once (`_exit`): no atexit handlers, no runtime teardown. For the
/// short-lived `start` and `delete` commands, whose output is written unbuffered, and whose
/// exit containerd waits for.
public func exitImmediately(_ status: Int32) -> Never {
    Glibc._exit(status)
}

/// Parks the calling thread for good (the main thread, while tasks do the work and end the
/// process themselves).
public func parkForever() -> Never {
    while true { Glibc.pause() }
}
