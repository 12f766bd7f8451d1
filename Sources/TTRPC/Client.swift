#if canImport(FoundationEssentials)
import Deadlines
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import SwiftProtobuf
import Synchronization

/// A ttrpc client on one Unix socket connection. Calls may run concurrently; each has its
/// own stream id and its own deadline, which is also sent to the server as `timeout_nano`.
public final class TTRPCClient: Sendable {
    private let state = Mutex(State())

    private struct State {
        /// Go's client starts at 1 and adds 2 per stream.
        var nextStreamID: UInt32 = 1
        var nextCall: UInt64 = 0
        var pending: [UInt32: (call: UInt64, continuation: CheckedContinuation<[UInt8], any Error>)] = [:]
        var streamOfCall: [UInt64: UInt32] = [:]
        /// Calls cancelled before they were sent.
        var cancelledCalls: Set<UInt64> = []
        var closedReason: TTRPCStatus?
        var connection: FrameConnection?
    }

    private init() {}

    /// Connects to `path` (a `unix://` prefix is accepted). The connection is served by
    /// `loop` (e.g. the shim's, shared with its server), or by a loop of its own.
    public static func connect(path: String, loop: FrameLoop? = nil) throws -> TTRPCClient {
        let fd = try UnixSocket.connect(path: path)
        let loop = try loop ?? FrameLoop.frames()
        let client = TTRPCClient()
        let connection = FrameConnection(
            fd: fd,
            name: "ttrpc-cli",
            loop: loop,
            onFrame: { [weak client] item in client?.received(item) ?? .close },
            onCorrupt: { _ in },
            onClose: { [weak client] in client?.closed(TTRPCStatus(.unavailable, "ttrpc connection to \(path) closed")) }
        )
        client.state.withLock { $0.connection = connection }
        try connection.start()
        return client
    }

    deinit {
        state.withLock { $0.connection }?.close()
    }

    /// Whether the connection has closed (the peer went away or `close` was called).
    public var isClosed: Bool { state.withLock { $0.closedReason != nil } }

    public func close() {
        state.withLock { $0.connection }?.close()
    }

    /// Calls `service/method` with raw payload bytes; returns the response payload or throws
    /// the `TTRPCStatus` the server answered (DeadlineExceeded at `timeout`).
    public func call(
        service: String, method: String, payload: [UInt8],
        timeout: Duration? = nil, metadata: [(String, String)] = []
    ) async throws -> [UInt8] {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = Data(payload)
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            request.timeoutNano = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        }
        request.metadata = metadata.map { key, value in
            var pair = Ttrpc_KeyValue()
            pair.key = key
            pair.value = value
            return pair
        }
        let body: [UInt8] = try request.serializedBytes()
        let deadline: ContinuousClock.Instant? = timeout.map { .now + $0 }
        return try await withDeadline(deadline, onTimeout: {
            TTRPCStatus(.deadlineExceeded, "\(service)/\(method): no answer within \(timeout ?? .zero)")
        }) { [self] in
            try await exchange(body, description: "\(service)/\(method)")
        }
    }

    /// Calls with protobuf messages.
    public func call<Response: SwiftProtobuf.Message>(
        service: String, method: String, request: some SwiftProtobuf.Message, returning: Response.Type = Response.self,
        timeout: Duration? = nil, metadata: [(String, String)] = []
    ) async throws -> Response {
        let bytes = try await call(
            service: service, method: method, payload: try request.serializedBytes(), timeout: timeout, metadata: metadata)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw TTRPCStatus(.internal, "\(service)/\(method): cannot decode \(Response.protoMessageName): \(error)")
        }
    }

    private func exchange(_ body: [UInt8], description: String) async throws -> [UInt8] {
        let call = state.withLock { state -> UInt64 in
            state.nextCall += 1
            return state.nextCall
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Stream ids must reach the wire in increasing order (the server rejects
                // anything else), so the id is allocated and the frame queued under one lock.
                let refusal = state.withLock { state -> (any Error)? in
                    if let reason = state.closedReason { return reason }
                    if state.cancelledCalls.remove(call) != nil { return CancellationError() }
                    guard let connection = state.connection else {
                        return TTRPCStatus(.unavailable, "\(description): connection closed")
                    }
                    let streamID = state.nextStreamID
                    state.nextStreamID &+= 2
                    guard connection.send(Frame(streamID: streamID, type: .request, payload: body)) else {
                        return TTRPCStatus(.unavailable, "\(description): connection closed")
                    }
                    state.pending[streamID] = (call, continuation)
                    state.streamOfCall[call] = streamID
                    return nil
                }
                if let refusal { continuation.resume(throwing: refusal) }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<[UInt8], any Error>? in
                guard let streamID = state.streamOfCall.removeValue(forKey: call) else {
                    state.cancelledCalls.insert(call)
                    return nil
                }
                return state.pending.removeValue(forKey: streamID)?.continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    private func received(_ item: DecodedFrame) -> FrameConnection.Disposition {
        guard case .frame(let frame) = item, frame.messageType == .response else {
            // A server never sends these to a unary client; ignore rather than guess.
            return .keepOpen
        }
        let waiting = state.withLock { state -> CheckedContinuation<[UInt8], any Error>? in
            guard let entry = state.pending.removeValue(forKey: frame.streamID) else { return nil }
            state.streamOfCall.removeValue(forKey: entry.call)
            return entry.continuation
        }
        guard let waiting else {
            return .keepOpen  // an answer that arrived after its caller gave up
        }
        do {
            let response = try Ttrpc_Response(serializedBytes: frame.payload)
            if response.hasStatus && response.status.code != 0 {
                let code = StatusCode(rawValue: response.status.code) ?? .unknown
                waiting.resume(throwing: TTRPCStatus(code, response.status.message))
            } else {
                waiting.resume(returning: [UInt8](response.payload))
            }
        } catch {
            waiting.resume(throwing: TTRPCStatus(.internal, "undecodable ttrpc response: \(error)"))
        }
        return .keepOpen
    }

    private func closed(_ reason: TTRPCStatus) {
        let waiting = state.withLock { state -> [CheckedContinuation<[UInt8], any Error>] in
            state.closedReason = reason
            let waiting = state.pending.values.map(\.continuation)
            state.pending = [:]
            state.streamOfCall = [:]
            // Breaks the client ↔ connection cycle.
            state.connection = nil
            return waiting
        }
        for continuation in waiting { continuation.resume(throwing: reason) }
    }
}
