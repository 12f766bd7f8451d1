/// What the shim and the node tools (`warden status`, `doctor`, `sweep`) must agree on: the
/// environment `start` gives the server it spawns (read back from /proc by the tools), and the
/// files the shim leaves for them. One definition, imported by both: a name retyped on one side
/// would let the tools silently stop finding what the shim wrote.
public enum ShimEnvironment {
    /// The Warden config the server runs with (also what a `runtime_type` wrapper sets when
    /// containerd can pass no ConfigPath).
    public static let configPath = "WARDEN_CONFIG_PATH"
    /// The socket the server listens on.
    public static let socketPath = "WARDEN_SOCKET_PATH"
    /// The pod (CRI sandbox id, else the first container's id): names the server's runsc root.
    public static let pod = "WARDEN_POD"
}

public enum ShimFiles {
    /// Written into the bundle so a later `delete` (a fresh process, no options) uses the same config.
    public static let bundleConfig = "warden-config-path"
    /// The shim's Prometheus textfile in the metrics directory.
    public static let metricsExtension = ".prom"

    public static func metrics(namespace: String, pod: String) -> String { "\(namespace)_\(pod)\(metricsExtension)" }
}

/// A sandbox crash as the shim records it for the node tools: `warden status` reads the last
/// one from the metrics file, `warden doctor` these records, one file per pod in the metrics
/// directory (`ShimFiles.crashRecord`), kept after the shim is gone.
public struct CrashRecord: Codable, Sendable, Equatable {
    public var sandbox: String
    /// `runsc-sandbox`, or the gofer's argv[0].
    public var process: String
    public var pid: Int32
    /// `exited with status 2`, `killed by signal 9`.
    public var status: String
    /// The `reason` label of `warden_sandbox_crashes_total`.
    public var reason: String
    /// The panic's first line, or what else is known.
    public var detail: String
    /// Seconds since the epoch.
    public var at: Double

    public init(sandbox: String, process: String, pid: Int32, status: String, reason: String, detail: String, at: Double) {
        self.sandbox = sandbox
        self.process = process
        self.pid = pid
        self.status = status
        self.reason = reason
        self.detail = detail
        self.at = at
    }
}

extension ShimFiles {
    public static let crashRecordExtension = ".crash.json"
    /// How many crash records the metrics directory keeps (the newest).
    public static let crashRecordsKept = 32

    public static func crashRecord(namespace: String, pod: String) -> String { "\(namespace)_\(pod)\(crashRecordExtension)" }
}
