import SwiftProtobuf
import TTRPC

/// The Swift twin of tests/fixtures/ttrpc-interop's Go service, so the same checks run
/// against either side. Messages are google.protobuf.StringValue.
public enum EchoService {
    public static let name = "warden.interop.v1.Echo"

    public static func register(into registry: inout ServiceRegistry) {
        registry.register(service: name, method: "Echo") { (context: RequestContext, request: Google_Protobuf_StringValue) in
            Google_Protobuf_StringValue(request.value + "|ns=" + (context.namespace ?? ""))
        }
        registry.register(service: name, method: "Sleep") { (_: RequestContext, request: Google_Protobuf_StringValue) in
            guard let milliseconds = Int(request.value) else {
                throw TTRPCStatus(.invalidArgument, "bad duration \"\(request.value)\"")
            }
            try await Task.sleep(for: .milliseconds(milliseconds))
            return Google_Protobuf_StringValue("slept")
        }
        registry.register(service: name, method: "Fail") { (_: RequestContext, request: Google_Protobuf_StringValue) -> Google_Protobuf_StringValue in
            throw TTRPCStatus(.notFound, request.value)
        }
    }

    public static func registry() -> ServiceRegistry {
        var registry = ServiceRegistry()
        register(into: &registry)
        return registry
    }
}

extension TTRPCClient {
    /// Calls an Echo-service method with a string.
    public func echoCall(
        _ method: String, _ value: String, timeout: Duration? = nil, metadata: [(String, String)] = []
    ) async throws -> String {
        try await call(
            service: EchoService.name, method: method, request: Google_Protobuf_StringValue(value),
            returning: Google_Protobuf_StringValue.self, timeout: timeout, metadata: metadata
        ).value
    }
}
