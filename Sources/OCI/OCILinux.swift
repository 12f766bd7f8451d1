/// The `linux` section of an OCI runtime spec as far as Warden's programs read it (the shim,
/// `warden doctor`, fake-runsc): the namespaces the container joins and its cgroup path.
/// Decoded in one place so that the three agree on what a spec names.
public struct OCILinux: Decodable, Sendable {
    public struct Namespace: Decodable, Sendable {
        public var type: String
        public var path: String?
    }
    public var namespaces: [Namespace]?
    public var cgroupsPath: String?

    /// The network namespace the spec joins; nil when it asks for a new one (no path, or an
    /// empty one).
    public var networkNamespacePath: String? {
        namespaces?.first { $0.type == "network" }?.path.flatMap { $0.isEmpty ? nil : $0 }
    }
}
