import Glibc

/// Process-level output and exit, so that callers need not import Glibc.
public enum Console {
    public static func error(_ line: String) {
        var text = line
        if !text.hasSuffix("\n") { text += "\n" }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

public func exit(_ status: Int32) -> Never {
    Glibc.exit(status)
}
