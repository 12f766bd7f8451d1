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
