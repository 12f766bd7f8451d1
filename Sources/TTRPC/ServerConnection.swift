#if canImport(FoundationEssentials)
import Deadlines
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import SwiftProtobuf
import Synchronization

/// The server side of one client connection: validates frames, dispatches requests as
/// concurrent tasks and answers each stream exactly once.
final class ServerConnection: Sendable {
    private let registry: ServiceRegistry
    private let options: ServerOptions
    private let peer: PeerCredentials?
    private let state = Mutex(State())
    // Set once in `start`, before any frame can arrive.
    private let connectionBox = Mutex<FrameConnection?>(nil)

    private struct State {
        /// Stream ids must be odd and increase (Go ttrpc server.go).
        var lastStreamID: UInt32 = 0
        var inFlight: [UInt32: Task<Void, Never>] = [:]
        var closed = false
        /// Waiting for every request in flight to be answered (or the connection to close).
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(registry: ServiceRegistry, options: ServerOptions, peer: PeerCredentials?) {
        self.registry = registry
        self.options = options
        self.peer = peer
    }

    func start(fd: Int32, loop: FrameLoop, onClose: @escaping @Sendable () -> Void) throws(Errno) {
        let connection = FrameConnection(
            fd: fd,
            name: "ttrpc-srv",
            loop: loop,
            onFrame: { [self] in received($0) },
            onCorrupt: { [self] in corrupt($0) },
            onClose: { [self] in
                closed()
                onClose()
            }
        )
        connectionBox.withLock { $0 = connection }
        try connection.start()
    }

    func close() {
        connectionBox.withLock { $0 }?.close()
    }

    private var connection: FrameConnection? { connectionBox.withLock { $0 } }

    /// Returns once no request is in flight: each has been answered (its reply handed to the
    /// socket) or the connection closed.
    func waitUntilAnswered() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state -> Bool in
                if state.closed || state.inFlight.isEmpty { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    private func closed() {
        let (tasks, waiters) = state.withLock { state -> ([Task<Void, Never>], [CheckedContinuation<Void, Never>]) in
            state.closed = true
            let tasks = Array(state.inFlight.values)
            state.inFlight = [:]
            defer { state.idleWaiters = [] }
            return (tasks, state.idleWaiters)
        }
        waiters.forEach { $0.resume() }
        // Breaks the connection ↔ handler reference cycle; late replies find no connection.
        connectionBox.withLock { $0 = nil }
        // The client is gone: nobody will read these answers.
        for task in tasks { task.cancel() }
    }

    private func reply(_ streamID: UInt32, _ status: TTRPCStatus, payload: [UInt8] = []) {
        var response = Ttrpc_Response()
        response.status.code = status.code.rawValue
        response.status.message = status.message
        response.payload = Data(payload)
        guard let bytes: [UInt8] = try? response.serializedBytes() else { return }
        var frame = Frame(streamID: streamID, type: .response, payload: bytes)
        if bytes.count > FrameHeader.maxDataLength {
            // The handler produced more than ttrpc can carry: say so instead of sending nothing.
            let tooBig = TTRPCStatus(.resourceExhausted, "response of \(bytes.count) bytes exceeds the ttrpc maximum of \(FrameHeader.maxDataLength)")
            var refusal = Ttrpc_Response()
            refusal.status.code = tooBig.code.rawValue
            refusal.status.message = tooBig.message
            frame.payload = (try? refusal.serializedBytes()) ?? []
        }
        connection?.send(frame)
    }

    /// Answers a protocol violation and closes the connection once the answer is written.
    private func reject(_ streamID: UInt32, _ message: String) -> FrameConnection.Disposition {
        options.log("ttrpc: closing connection from pid \(peer.map { String($0.pid) } ?? "?"): \(message)")
        reply(streamID, TTRPCStatus(.invalidArgument, message))
        // The reader stops; the writer still flushes this answer before closing the socket.
        return .close
    }

    private func corrupt(_ error: FrameError) {
        if case .corruptLength(let streamID, _) = error, streamID % 2 == 1 {
            reply(streamID, TTRPCStatus(.invalidArgument, error.description))
        }
        options.log("ttrpc: closing connection: \(error)")
    }

    private func received(_ item: DecodedFrame) -> FrameConnection.Disposition {
        let frame: Frame
        switch item {
        case .oversized(let streamID, _, let length):
            // Go ttrpc discards the payload and answers ResourceExhausted; the connection stays.
            reply(streamID, TTRPCStatus(.resourceExhausted, "message length \(length) exceed maximum message size of \(FrameHeader.maxDataLength)"))
            return .keepOpen
        case .frame(let decoded):
            frame = decoded
        }
        guard frame.messageType == .request else {
            let what = frame.messageType.map { "\($0)" } ?? "unknown message type \(frame.type)"
            return reject(frame.streamID, "unexpected \(what) frame on stream \(frame.streamID)")
        }
        guard frame.streamID % 2 == 1 else {
            return reject(frame.streamID, "StreamID must be odd for client initiated streams")
        }
        let accepted = state.withLock { state -> Bool in
            guard frame.streamID > state.lastStreamID else { return false }
            state.lastStreamID = frame.streamID
            return true
        }
        guard accepted else {
            return reject(frame.streamID, "StreamID cannot be re-used and must increment")
        }
        if frame.flags.contains(.remoteOpen) {
            reply(frame.streamID, TTRPCStatus(.unimplemented, "streaming requests are not supported"))
            return .keepOpen
        }
        let request: Ttrpc_Request
        do {
            request = try Ttrpc_Request(serializedBytes: frame.payload)
        } catch {
            return reject(frame.streamID, "unmarshal request error: \(error)")
        }
        let handler: MethodHandler
        switch registry.lookup(service: request.service, method: request.method) {
        case .success(let found): handler = found
        case .failure(let status):
            reply(frame.streamID, status)
            return .keepOpen
        }
        dispatch(frame.streamID, request, handler)
        return .keepOpen
    }

    private func dispatch(_ streamID: UInt32, _ request: Ttrpc_Request, _ handler: @escaping MethodHandler) {
        var metadata: [String: [String]] = [:]
        for pair in request.metadata { metadata[pair.key, default: []].append(pair.value) }
        let timeout = request.timeoutNano
        let deadline: ContinuousClock.Instant? = timeout > 0 ? .now + .nanoseconds(timeout) : nil
        let context = RequestContext(
            service: request.service, method: request.method, metadata: metadata, deadline: deadline, peer: peer)
        let payload = [UInt8](request.payload)
        let limit = options.maxInFlightPerConnection
        let admitted = state.withLock { state -> Bool in
            guard !state.closed, state.inFlight.count < limit else { return false }
            // Created under the lock so the task's own removal cannot run before this insert.
            state.inFlight[streamID] = Task { [self] in
                let began = ContinuousClock.now
                let outcome: Result<[UInt8], any Error>
                do {
                    let bytes = try await withDeadline(deadline, onTimeout: {
                        TTRPCStatus(.deadlineExceeded, "\(context.service)/\(context.method): deadline of \(Duration.nanoseconds(timeout)) exceeded")
                    }) {
                        try await handler(context, payload)
                    }
                    outcome = .success(bytes)
                } catch {
                    outcome = .failure(error)
                }
                // Answered first, then out of the in-flight set: whoever waits for the
                // connection to be idle (a Shutdown) knows every reply reached the socket.
                defer {
                    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
                        state.inFlight.removeValue(forKey: streamID)
                        guard state.inFlight.isEmpty else { return [] }
                        defer { state.idleWaiters = [] }
                        return state.idleWaiters
                    }
                    waiters.forEach { $0.resume() }
                }
                guard !self.state.withLock({ $0.closed }) else { return }
                let status: TTRPCStatus
                switch outcome {
                case .success(let bytes):
                    status = TTRPCStatus(.ok, "")
                    reply(streamID, status, payload: bytes)
                case .failure(let error):
                    status = TTRPCStatus.from(error)
                    reply(streamID, status)
                }
                options.onAnswered(context.service, context.method, .now - began, status.code.rawValue)
                if case .success(let bytes) = outcome, bytes.count >= options.largeMessageBytes {
                    options.afterLargeMessage()
                } else if payload.count >= options.largeMessageBytes {
                    options.afterLargeMessage()
                }
            }
            return true
        }
        if !admitted {
            reply(streamID, TTRPCStatus(.resourceExhausted, "\(limit) requests already in flight on this connection"))
        }
    }
}
