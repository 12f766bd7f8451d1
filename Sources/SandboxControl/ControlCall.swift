// One urpc call on a connection of its own, served by an event loop the caller gives (the
// shim's): connect without blocking, write the call, read until the answer's object closes,
// close. A connection per call, as runsc's CLI makes one: urpc serves one call at a time per
// connection, and a Wait blocks its connection until the container exits.

import Deadlines
import LinuxSys
import Synchronization

final class ControlCall: EventLoop.Handler, Sendable {
    private let method: String
    private let loop: EventLoop
    private let state: Mutex<State>

    private struct State {
        var fd: Int32
        var tag: UInt64?
        var outgoing: [UInt8]
        var sent = 0
        var incoming: [UInt8] = []
        var continuation: CheckedContinuation<[UInt8], any Error>?
        var outcome: Result<[UInt8], ControlError>?
        var finished = false
    }

    private init(method: String, fd: Int32, request: [UInt8], loop: EventLoop) {
        self.method = method
        self.loop = loop
        state = Mutex(State(fd: fd, outgoing: request))
    }

    /// The answer object's bytes. `timeout` nil: until it comes (a Wait), or the caller is
    /// cancelled; either way the connection is closed on the loop.
    static func perform(path: String, method: String, request: [UInt8], loop: EventLoop, timeout: Duration?) async throws(ControlError) -> [UInt8] {
        let fd: Int32
        do { fd = try UnixSocket.connect(path: path, nonBlocking: true) } catch {
            throw .unreachable(method: method, path: path, detail: "\(error)")
        }
        let call = ControlCall(method: method, fd: fd, request: request, loop: loop)
        do {
            return try await withDeadline(timeout.map { .now + $0 }, onTimeout: { ControlError.timedOut(method: method, after: timeout ?? .zero) }) {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in call.begin(continuation) }
                } onCancel: {
                    loop.perform { call.finish(.failure(.cancelled(method: method))) }
                }
            }
        } catch let error as ControlError {
            loop.perform { call.finish(.failure(error)) }
            throw error
        } catch {
            loop.perform { call.finish(.failure(.cancelled(method: method))) }
            throw .cancelled(method: method)
        }
    }

    private func begin(_ continuation: CheckedContinuation<[UInt8], any Error>) {
        let early = state.withLock { state -> Result<[UInt8], ControlError>? in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(with: early.mapError { $0 as any Error })
            return
        }
        // Registered on the loop thread, where it is closed: a finish that came first (a
        // deadline, a cancel) has closed it, and its number may already be someone else's.
        do throws(Errno) { try loop.start() } catch {
            finish(.failure(.unreachable(method: method, path: "(event loop)", detail: "\(error)")))
            return
        }
        loop.perform { [self] in
            guard let fd = state.withLock({ $0.finished ? nil : $0.fd }) else { return }
            do {
                let tag = try loop.register(fd, self, for: [.readable, .writable], makeNonBlocking: false)
                state.withLock { $0.tag = tag }
            } catch {
                finish(.failure(.unreachable(method: method, path: "(connected socket)", detail: "\(error)")))
            }
        }
    }

    func ready(_ events: UInt32) {
        writeAvailable()
        if events & EventLoop.readableEvents != 0 { readAvailable() }
    }

    private func writeAvailable() {
        state.withLock { state in
            guard !state.finished, state.sent < state.outgoing.count else { return }
            let fd = state.fd
            while state.sent < state.outgoing.count {
                let result = state.outgoing.withUnsafeBytes { raw in
                    UnixSocket.sendSome(fd, UnsafeRawBufferPointer(rebasing: raw[state.sent...]))
                }
                switch result {
                case .wrote(let count): state.sent += count
                case .wouldBlock: return
                case .failed:
                    // The read side sees the hang-up and reports the call closed.
                    state.sent = state.outgoing.count
                    return
                }
            }
            if let tag = state.tag { loop.watch(fd, tag: tag, readable: true, writable: false) }
        }
    }

    private func readAvailable() {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            guard let fd = state.withLock({ $0.finished ? nil : $0.fd }) else { return }
            let result = chunk.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try UnixSocket.read(fd, into: raw) }
            }
            switch result {
            case .failure(let error) where error.code == Errno.EAGAIN: return
            case .failure, .success(0):
                let received = state.withLock { $0.incoming.count }
                finish(.failure(.closed(method: method, received: received)))
                return
            case .success(let count):
                let answer = state.withLock { state -> Result<[UInt8], ControlError>? in
                    state.incoming += chunk[0..<count]
                    do throws(ControlError) {
                        guard let end = try URPC.endOfObject(state.incoming, method: method) else { return nil }
                        return .success(Array(state.incoming[0..<end]))
                    } catch {
                        return .failure(error)
                    }
                }
                if let answer {
                    finish(answer)
                    return
                }
            }
        }
    }

    /// Once: the connection unregistered and closed (on the loop thread), the caller answered.
    func finish(_ outcome: Result<[UInt8], ControlError>) {
        let (continuation, fd, tag) = state.withLock { state -> (CheckedContinuation<[UInt8], any Error>?, Int32?, UInt64?) in
            guard !state.finished else { return (nil, nil, nil) }
            state.finished = true
            state.outcome = outcome
            defer { state.continuation = nil }
            return (state.continuation, state.fd, state.tag)
        }
        if let fd {
            if let tag { loop.unregister(fd, tag: tag) }
            UnixSocket.close(fd)
        }
        continuation?.resume(with: outcome.mapError { $0 as any Error })
    }
}
