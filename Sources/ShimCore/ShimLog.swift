import Config
import LinuxSys

/// The shim's log: logfmt lines (as containerd's own shims write them) to the bundle's `log`
/// fifo, which containerd copies to its output. The fifo is written without blocking: when
/// nobody reads, lines are dropped rather than stalling the shim.
public final class ShimLog: Sendable {
    private let fd: Int32?
    private let level: WardenConfig.LogLevel
    private let fields: String

    public init(fifo path: String?, level: WardenConfig.LogLevel, fields: String = "") {
        self.fd = path.flatMap { try? FileDescriptor.openNonBlockingWriter($0) }
        self.level = level
        self.fields = fields
    }

    public func debug(_ message: String) { write("debug", message, .debug) }
    public func info(_ message: String) { write("info", message, .info) }
    public func warn(_ message: String) { write("warning", message, .warn) }
    public func error(_ message: String) { write("error", message, .error) }

    private func write(_ name: String, _ message: String, _ messageLevel: WardenConfig.LogLevel) {
        guard let fd, messageLevel.rank >= level.rank else { return }
        let (seconds, nanos) = WallClock.now()
        let escaped = message.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"").replacingAll("\n", "\\n")
        let line = "time=\(seconds).\(String(nanos / 1_000_000).leftPadded(3)) level=\(name) msg=\"\(escaped)\" runtime=io.containerd.warden.v2\(fields)\n"
        _ = try? FileDescriptor.writeAll(fd, Array(line.utf8))
    }
}

extension WardenConfig.LogLevel {
    var rank: Int {
        switch self {
        case .trace: 0
        case .debug: 1
        case .info: 2
        case .warn: 3
        case .error: 4
        }
    }
}

extension String {
    func replacingAll(_ target: Character, _ replacement: String) -> String {
        var result = ""
        result.reserveCapacity(count)
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }

    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
