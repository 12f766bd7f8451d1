// The calls runsc's CLI makes to a sandbox's control server for wait, kill, ps and events
// (runsc/sandbox/sandbox.go, runsc/boot/controller.go), made by the shim itself: no runsc
// process per call, and no `runsc wait` process per container. gVisor's internal interface,
// not a stable API: the shim probes it per sandbox and keeps the CLI as the fallback.

import LinuxSys

public struct SandboxControl: Sendable {
    /// The sandbox's control socket (runsc 2024: `controlSocketPath` in its state file).
    public let socketPath: String
    private let loop: EventLoop

    public init(socketPath: String, loop: EventLoop) {
        self.socketPath = socketPath
        self.loop = loop
    }

    /// `containerManager.Signal`'s `Mode` (runsc/boot/controller.go SignalDeliveryMode).
    public enum SignalMode: Int, Sendable {
        /// The process `pid` (0: the container's init).
        case process = 0
        /// Every process of the container (`runsc kill --all`).
        case allProcesses = 1
    }

    /// One call: its result, decoded as `Result` (nil for `"result":null`).
    public func call<Argument: Encodable, Result: Decodable>(
        _ method: String, _ argument: Argument, as type: Result.Type, timeout: Duration?
    ) async throws(ControlError) -> Result? {
        let answer = try await ControlCall.perform(
            path: socketPath, method: method, request: URPC.request(method: method, argument: argument), loop: loop, timeout: timeout)
        return try URPC.result(answer, as: type, method: method)
    }

    /// The container's exit as runsc's `wait` reports it: the exit code, or 128 + the signal
    /// that killed it. Blocks (on the loop, not a thread) until the container exits.
    public func wait(_ containerID: String, timeout: Duration? = nil) async throws(ControlError) -> Int32 {
        let method = "containerManager.Wait"
        guard let status = try await call(method, containerID, as: UInt32.self, timeout: timeout) else {
            throw .malformed(method: method, detail: "no wait status in the answer")
        }
        return Self.exitStatus(waitStatus: status)
    }

    /// As runsc's `exitStatus` (runsc/cmd/wait.go) of a Linux wait status.
    public static func exitStatus(waitStatus: UInt32) -> Int32 {
        let signal = waitStatus & 0x7f
        if signal != 0 && signal != 0x7f { return 128 + Int32(signal) }
        return Int32((waitStatus >> 8) & 0xff)
    }

    private struct SignalArgs: Encodable {
        var CID: String
        var Signo: Int32
        var PID: Int32
        var Mode: Int
    }

    /// A result that must be an object (what urpc gives for a method with no reply): a
    /// server answering anything else is not runsc's.
    private struct Empty: Decodable {
        private struct NoKeys: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        init(from decoder: any Decoder) throws { _ = try decoder.container(keyedBy: NoKeys.self) }
    }

    public func signal(_ containerID: String, signal: Int32, pid: Int32 = 0, mode: SignalMode, timeout: Duration?) async throws(ControlError) {
        _ = try await call(
            "containerManager.Signal", SignalArgs(CID: containerID, Signo: signal, PID: pid, Mode: mode.rawValue), as: Empty.self,
            timeout: timeout)
    }

    private struct ProcessEntry: Decodable { var pid: Int32 }

    /// The pids of the container's processes (what `runsc ps --format=json` prints). An
    /// answer of null is no processes (a container not started yet).
    public func processes(_ containerID: String, timeout: Duration?) async throws(ControlError) -> [Int32] {
        (try await call("containerManager.Processes", containerID, as: [ProcessEntry].self, timeout: timeout) ?? []).map(\.pid)
    }
}
