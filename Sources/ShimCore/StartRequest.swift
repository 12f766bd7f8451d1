import ContainerdAPI
import SwiftProtobuf

/// What `start` finds on stdin (reference/shim-contract.md §1.2), and so how it must answer.
///
/// - containerd 2.3+ writes a `BootstrapParams` and reads a `BootstrapResult` back
///   (docs/runtime-v2.md of v2.3.4, "Bootstrap protocol"). It still passes the legacy flags
///   and environment, and still accepts a text answer, but both are deprecated.
/// - containerd 1.6–2.2 write the runtime options (an `Any`), or nothing, and read the
///   address as text.
///
/// A `BootstrapParams` and an `Any` share their first two fields' wire types (1: string,
/// 2: string or bytes), so each parses as the other. A `BootstrapParams` is told apart by what
/// an `Any` never has (fields 3–9: containerd always sends its version and addresses), or by
/// naming exactly the id and namespace of the command line.
struct StartRequest: Equatable {
    enum Kind: Equatable {
        case legacy
        case bootstrap
    }

    var kind: Kind = .legacy
    /// From a BootstrapParams: the instance and namespace (the command line's, which must match).
    var id: String?
    var namespace: String?
    var configPath: String?
    var socketDirectory: String?
    /// From a BootstrapParams: containerd's addresses and binary, for a command line without them.
    var ttrpcAddress: String?
    var grpcAddress: String?
    var publishBinary: String?
    var debug = false

    struct Refusal: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    /// `id` and `namespace` are the command line's (empty when containerd gave none).
    static func parse(_ bytes: [UInt8], id: String, namespace: String) throws(Refusal) -> StartRequest {
        guard !bytes.isEmpty else { return StartRequest() }
        let asParams = try? Containerd_Runtime_Bootstrap_V1_BootstrapParams(serializedBytes: bytes)
        if let params = asParams, isBootstrap(params, id: id, namespace: namespace) {
            return try bootstrap(params, id: id, namespace: namespace)
        }
        if let any = try? Google_Protobuf_Any(serializedBytes: bytes) {
            return StartRequest(configPath: configPath(of: any))
        }
        throw Refusal(
            description: "stdin holds \(bytes.count) bytes that are neither a containerd BootstrapParams nor runtime options "
                + "(protobuf does not parse: truncated or not protobuf); refusing to start with options I cannot read")
    }

    private static func isBootstrap(_ params: Containerd_Runtime_Bootstrap_V1_BootstrapParams, id: String, namespace: String) -> Bool {
        let onlyBootstrapHas =
            params.logLevel.rawValue != 0 || !params.containerdVersion.isEmpty || !params.containerdTtrpcAddress.isEmpty
            || !params.containerdGrpcAddress.isEmpty || !params.containerdBinary.isEmpty || !params.extensions.isEmpty
            || params.hasSocketDir
        return onlyBootstrapHas || (!id.isEmpty && params.instanceID == id && params.namespace == namespace)
    }

    private static func bootstrap(
        _ params: Containerd_Runtime_Bootstrap_V1_BootstrapParams, id: String, namespace: String
    ) throws(Refusal) -> StartRequest {
        guard !params.instanceID.isEmpty, !params.namespace.isEmpty else {
            throw Refusal(description: "BootstrapParams on stdin names no instance_id or namespace")
        }
        // One shim per pod is found by id and namespace: a request for another container must
        // never be answered with this one's socket.
        if (!id.isEmpty && params.instanceID != id) || (!namespace.isEmpty && params.namespace != namespace) {
            throw Refusal(
                description: "BootstrapParams on stdin is for \"\(params.instanceID)\" in namespace \"\(params.namespace)\", "
                    + "but the command line says -id \"\(id)\" -namespace \"\(namespace)\"")
        }
        var request = StartRequest(kind: .bootstrap, id: params.instanceID, namespace: params.namespace)
        request.socketDirectory = params.hasSocketDir && !params.socketDir.isEmpty ? params.socketDir : nil
        for extensionValue in params.extensions {
            if let path = configPath(of: extensionValue.value) { request.configPath = path }
        }
        request.ttrpcAddress = params.containerdTtrpcAddress.isEmpty ? nil : params.containerdTtrpcAddress
        request.grpcAddress = params.containerdGrpcAddress.isEmpty ? nil : params.containerdGrpcAddress
        request.publishBinary = params.containerdBinary.isEmpty ? nil : params.containerdBinary
        // Open enum: more verbose than INFO is negative.
        request.debug = params.logLevel.rawValue < 0
        return request
    }

    /// runtimeoptions.v1.Options{type_url=1, config_path=2}, whatever its type URL says
    /// (CRI passes the handler's TypeUrl, ctr an empty one).
    static func configPath(of any: Google_Protobuf_Any) -> String? {
        guard let options = try? Runtimeoptions_V1_Options(serializedBytes: Array(any.value)) else { return nil }
        return options.configPath.isEmpty ? nil : options.configPath
    }

    /// What `start` prints: the address as text for a legacy request, a serialized
    /// BootstrapResult (no newline: the bytes are the whole message) for a bootstrap one.
    func answer(address: String) -> [UInt8] {
        switch kind {
        case .legacy:
            return Array((address + "\n").utf8)
        case .bootstrap:
            var result = Containerd_Runtime_Bootstrap_V1_BootstrapResult()
            result.version = 2
            result.address = address
            result.protocol = "ttrpc"
            return (try? result.serializedBytes()) ?? []
        }
    }
}
