import ContainerdAPI
import SwiftProtobuf
import TTRPC

/// `containerd.runtime.sandbox.v1.Sandbox` over a PodShim, on the same socket as the task API:
/// what containerd 2.x's shim sandboxer (`sandboxer = "shim"`) calls instead of running a
/// pause container as a task. Errors are ShimErrors, turned into statuses by the server.
public enum SandboxService {
    public static let serviceName = "containerd.runtime.sandbox.v1.Sandbox"

    public static func register(_ shim: PodShim, into registry: inout ServiceRegistry) {
        let service = serviceName
        registry.register(service: service, method: "CreateSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_CreateSandboxRequest) async throws -> Containerd_Runtime_Sandbox_V1_CreateSandboxResponse in
            try await shim.createSandbox(request)
            return Containerd_Runtime_Sandbox_V1_CreateSandboxResponse()
        }
        registry.register(service: service, method: "StartSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_StartSandboxRequest) async throws -> Containerd_Runtime_Sandbox_V1_StartSandboxResponse in
            try await shim.startSandbox(id: request.sandboxID)
        }
        registry.register(service: service, method: "Platform") {
            (_, request: Containerd_Runtime_Sandbox_V1_PlatformRequest) async throws -> Containerd_Runtime_Sandbox_V1_PlatformResponse in
            try await shim.platform(id: request.sandboxID)
        }
        registry.register(service: service, method: "StopSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_StopSandboxRequest) async throws -> Containerd_Runtime_Sandbox_V1_StopSandboxResponse in
            try await shim.stopSandbox(id: request.sandboxID)
            return Containerd_Runtime_Sandbox_V1_StopSandboxResponse()
        }
        registry.register(service: service, method: "WaitSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_WaitSandboxRequest) async throws -> Containerd_Runtime_Sandbox_V1_WaitSandboxResponse in
            try await shim.waitSandbox(id: request.sandboxID)
        }
        registry.register(service: service, method: "SandboxStatus") {
            (_, request: Containerd_Runtime_Sandbox_V1_SandboxStatusRequest) async throws -> Containerd_Runtime_Sandbox_V1_SandboxStatusResponse in
            try await shim.sandboxStatus(id: request.sandboxID, verbose: request.verbose)
        }
        registry.register(service: service, method: "PingSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_PingRequest) async throws -> Containerd_Runtime_Sandbox_V1_PingResponse in
            try await shim.pingSandbox(id: request.sandboxID)
            return Containerd_Runtime_Sandbox_V1_PingResponse()
        }
        registry.register(service: service, method: "ShutdownSandbox") {
            (_, request: Containerd_Runtime_Sandbox_V1_ShutdownSandboxRequest) async throws -> Containerd_Runtime_Sandbox_V1_ShutdownSandboxResponse in
            try await shim.shutdownSandbox(id: request.sandboxID)
            return Containerd_Runtime_Sandbox_V1_ShutdownSandboxResponse()
        }
        registry.register(service: service, method: "SandboxMetrics") {
            (_, request: Containerd_Runtime_Sandbox_V1_SandboxMetricsRequest) async throws -> Containerd_Runtime_Sandbox_V1_SandboxMetricsResponse in
            try await shim.sandboxMetrics(id: request.sandboxID)
        }
    }
}
