import ContainerdAPI
import SwiftProtobuf
import TTRPC

/// `containerd.task.v2.Task` (and the identical `containerd.task.v3.Task`) over a PodShim.
/// Errors thrown here are ShimErrors; the ttrpc server turns them into statuses in one place.
public enum TaskService {
    public static let serviceNames = ["containerd.task.v2.Task", "containerd.task.v3.Task"]

    public static func register(_ shim: PodShim, into registry: inout ServiceRegistry) {
        for service in serviceNames {
            registry.register(service: service, method: "Create") {
                (_, request: Containerd_Task_V2_CreateTaskRequest) async throws -> Containerd_Task_V2_CreateTaskResponse in
                var response = Containerd_Task_V2_CreateTaskResponse()
                response.pid = try await shim.create(request)
                return response
            }
            registry.register(service: service, method: "Start") {
                (_, request: Containerd_Task_V2_StartRequest) async throws -> Containerd_Task_V2_StartResponse in
                var response = Containerd_Task_V2_StartResponse()
                response.pid = try await shim.start(id: request.id, execID: request.execID)
                return response
            }
            registry.register(service: service, method: "State") {
                (_, request: Containerd_Task_V2_StateRequest) async throws -> Containerd_Task_V2_StateResponse in
                try await shim.state(id: request.id, execID: request.execID)
            }
            registry.register(service: service, method: "Kill") {
                (_, request: Containerd_Task_V2_KillRequest) async throws -> Google_Protobuf_Empty in
                try await shim.kill(id: request.id, execID: request.execID, signal: request.signal, all: request.all)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "Delete") {
                (_, request: Containerd_Task_V2_DeleteRequest) async throws -> Containerd_Task_V2_DeleteResponse in
                try await shim.delete(id: request.id, execID: request.execID)
            }
            registry.register(service: service, method: "Exec") {
                (_, request: Containerd_Task_V2_ExecProcessRequest) async throws -> Google_Protobuf_Empty in
                try await shim.exec(request)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "ResizePty") {
                (_, request: Containerd_Task_V2_ResizePtyRequest) async throws -> Google_Protobuf_Empty in
                try await shim.resize(id: request.id, execID: request.execID, width: request.width, height: request.height)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "CloseIO") {
                (_, request: Containerd_Task_V2_CloseIORequest) async throws -> Google_Protobuf_Empty in
                try await shim.closeIO(id: request.id, execID: request.execID, stdin: request.stdin)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "Pids") {
                (_, request: Containerd_Task_V2_PidsRequest) async throws -> Containerd_Task_V2_PidsResponse in
                var response = Containerd_Task_V2_PidsResponse()
                response.processes = try await shim.pids(id: request.id)
                return response
            }
            registry.register(service: service, method: "Pause") {
                (_, request: Containerd_Task_V2_PauseRequest) async throws -> Google_Protobuf_Empty in
                try await shim.pause(id: request.id)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "Resume") {
                (_, request: Containerd_Task_V2_ResumeRequest) async throws -> Google_Protobuf_Empty in
                try await shim.resume(id: request.id)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "Update") {
                (_, request: Containerd_Task_V2_UpdateTaskRequest) async throws -> Google_Protobuf_Empty in
                try await shim.update(id: request.id, resources: request.resources)
                return Google_Protobuf_Empty()
            }
            registry.register(service: service, method: "Checkpoint") {
                (_, request: Containerd_Task_V2_CheckpointTaskRequest) async throws -> Google_Protobuf_Empty in
                throw ShimError(.unimplemented, "checkpoint \(request.id): not supported by the warden shim")
            }
            registry.register(service: service, method: "Stats") {
                (_, request: Containerd_Task_V2_StatsRequest) async throws -> Containerd_Task_V2_StatsResponse in
                var response = Containerd_Task_V2_StatsResponse()
                response.stats = try await shim.stats(id: request.id)
                return response
            }
            registry.register(service: service, method: "Wait") {
                (_, request: Containerd_Task_V2_WaitRequest) async throws -> Containerd_Task_V2_WaitResponse in
                try await shim.wait(id: request.id, execID: request.execID)
            }
            registry.register(service: service, method: "Connect") {
                (_, request: Containerd_Task_V2_ConnectRequest) async throws -> Containerd_Task_V2_ConnectResponse in
                try await shim.connect(id: request.id)
            }
            registry.register(service: service, method: "Shutdown") {
                (_, request: Containerd_Task_V2_ShutdownRequest) async throws -> Google_Protobuf_Empty in
                #if WARDEN_TEST_HOOKS
                await TestHooks.beforeShutdown(id: request.id, runscRoot: shim.runsc.root)
                #endif
                await shim.shutdown(id: request.id)
                return Google_Protobuf_Empty()
            }
        }
    }
}
