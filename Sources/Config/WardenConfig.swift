/// Warden's configuration: `/etc/containerd/warden.toml`, or the file named by the runtime
/// options' `ConfigPath` (how CRI passes per-handler config). Every key is documented in
/// `shim-config/warden.toml`. Unknown keys and bad values are errors naming file, line and key.
public struct WardenConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/containerd/warden.toml"

    /// The runsc binary.
    public var runsc = "/usr/bin/runsc"
    /// runsc `--root`: where runsc keeps container state.
    public var root = "/run/containerd/warden"
    public var logLevel: LogLevel = .info
    public var deadlines = Deadlines()
    public var netnsRelease: NetnsRelease = .down
    /// `[runsc_config]`: each `key = value` becomes `--key=value` on every runsc call.
    public var runscFlags: [RunscFlag] = []
    public var seccompMode: SeccompMode = .enforce
    /// `[metrics] dir`: where each shim writes its Prometheus textfile; empty: none.
    public var metricsDirectory = "/run/warden/metrics"
    /// `[sandbox] pause_rootfs`: the read-only rootfs (holding `pause`) of the pod sandboxes
    /// containerd 2.x creates through the Sandbox API (`sandboxer = "shim"`).
    public var pauseRootfs = "/usr/local/lib/warden/pause-rootfs"
    /// `control_channel`: whether wait, kill, ps and stats go to the sandbox's control server
    /// directly (`auto`: for each sandbox whose server answers a probe) or always through
    /// runsc's CLI (`off`).
    public var controlChannel: ControlChannel = .auto

    public init() {}

    public enum ControlChannel: String, Sendable, CaseIterable { case auto, off }

    public struct RunscFlag: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    /// The termination contract's bounds (design.md §3).
    public struct Deadlines: Sendable, Equatable {
        /// Any runsc call except create/start/exec/wait.
        public var runscCallTimeout: Duration = .seconds(5)
        /// `runsc create` + `start`.
        public var createTimeout: Duration = .seconds(60)
        /// After a signal is delivered, how long to wait for the exit before escalating.
        public var killGrace: Duration = .seconds(2)
        /// Kill(SIGKILL) of the pod sandbox → every task's exit published.
        public var stopDeadline: Duration = .seconds(10)
        /// A Delete RPC, and the `delete` subcommand (containerd allows 5 s).
        public var deleteDeadline: Duration = .seconds(5)
        /// Shutdown → process exit (containerd allows 3 s).
        public var shutdownDeadline: Duration = .seconds(3)

        public init() {}
    }

    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, warn, error }
    /// What happens to the pod's network namespace before the sandbox is torn down.
    public enum NetnsRelease: String, Sendable, CaseIterable { case down, delete, off }
    public enum SeccompMode: String, Sendable, CaseIterable { case off, log, enforce }

    /// Reads and validates `path`.
    public static func load(path: String, read: (String) -> [UInt8]?) throws(ConfigError) -> WardenConfig {
        guard let bytes = read(path) else {
            throw ConfigError(file: path, line: nil, message: "cannot read the file")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), file: path)
    }

    /// Parses TOML text; `file` names the source in errors.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> WardenConfig {
        let entries: [TOMLSubset.Entry]
        do {
            entries = try TOMLSubset.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, message: error.message)
        }
        var config = WardenConfig()
        for entry in entries {
            try config.apply(entry, file: file)
        }
        return config
    }

    private mutating func apply(_ entry: TOMLSubset.Entry, file: String) throws(ConfigError) {
        func fail(_ message: String) -> ConfigError {
            ConfigError(file: file, line: entry.line, message: "\(entry.key): \(message)")
        }
        func string() throws(ConfigError) -> String {
            guard case .string(let text) = entry.value else {
                throw fail("expected a string, found \(entry.value.typeName)")
            }
            return text
        }
        func path() throws(ConfigError) -> String {
            let text = try string()
            guard text.hasPrefix("/") else { throw fail("expected an absolute path, found \"\(text)\"") }
            return text
        }
        func choice<T: RawRepresentable & CaseIterable>(_: T.Type) throws(ConfigError) -> T where T.RawValue == String {
            let text = try string()
            guard let value = T(rawValue: text) else {
                throw fail("\"\(text)\" is not one of \(T.allCases.map { $0.rawValue }.joined(separator: ", "))")
            }
            return value
        }
        func duration() throws(ConfigError) -> Duration {
            let text = try string()
            guard let value = parseDuration(text) else {
                throw fail("\"\(text)\" is not a duration (examples: \"500ms\", \"5s\", \"1m\")")
            }
            guard value > .zero, value <= .seconds(3600) else {
                throw fail("\"\(text)\" is out of range (more than 0, at most 1h)")
            }
            return value
        }

        if entry.key.hasPrefix("runsc_config.") {
            let flag = String(entry.key.dropFirst("runsc_config.".count))
            // Warden owns these: they would fight the shim's own arguments.
            guard !["root", "log", "log-format"].contains(flag) else {
                throw fail("set by Warden itself; use the top-level key instead")
            }
            guard flag != "panic-log" else {
                throw fail("set by Warden itself: each sandbox's crash output goes to <root>/shim/<namespace>-<pod>/<id>.panic, where the shim reads its crash reason")
            }
            runscFlags.append(RunscFlag(key: flag, value: entry.value.flagText))
            return
        }
        switch entry.key {
        case "runsc": runsc = try path()
        case "root": root = try path()
        case "log_level": logLevel = try choice(LogLevel.self)
        case "control_channel": controlChannel = try choice(ControlChannel.self)
        case "deadlines.runsc_call_timeout": deadlines.runscCallTimeout = try duration()
        case "deadlines.create_timeout": deadlines.createTimeout = try duration()
        case "deadlines.kill_grace": deadlines.killGrace = try duration()
        case "deadlines.stop_deadline": deadlines.stopDeadline = try duration()
        case "deadlines.delete_deadline": deadlines.deleteDeadline = try duration()
        case "deadlines.shutdown_deadline": deadlines.shutdownDeadline = try duration()
        case "deadlines.netns_release": netnsRelease = try choice(NetnsRelease.self)
        case "seccomp.mode": seccompMode = try choice(SeccompMode.self)
        case "sandbox.pause_rootfs": pauseRootfs = try path()
        case "metrics.dir":
            let text = try string()
            guard text.isEmpty || text.hasPrefix("/") else { throw fail("expected an absolute path or \"\" (off), found \"\(text)\"") }
            metricsDirectory = text
        default:
            throw ConfigError(file: file, line: entry.line, message: "unknown key \(entry.key)")
        }
    }
}

/// A configuration problem, naming the file, the line and the key.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// "1.5s", "500ms", "2m", "1h", "250us" → Duration.
func parseDuration(_ text: String) -> Duration? {
    let units: [(suffix: String, nanoseconds: Double)] = [
        ("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
    ]
    for unit in units where text.hasSuffix(unit.suffix) {
        let number = text.dropLast(unit.suffix.count)
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(number) else {
            return nil
        }
        return .nanoseconds(Int64((value * unit.nanoseconds).rounded()))
    }
    return nil
}
