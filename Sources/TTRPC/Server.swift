import Deadlines
import LinuxSys
import SwiftProtobuf
import Synchronization

/// What a handler knows about the request it serves.
public struct RequestContext: Sendable {
    public let service: String
    public let method: String
    /// Request metadata; a key may repeat.
    public let metadata: [String: [String]]
    /// From `timeout_nano`; nil when the client set none.
    public let deadline: ContinuousClock.Instant?
    public let peer: PeerCredentials?

    public init(
        service: String, method: String, metadata: [String: [String]] = [:],
        deadline: ContinuousClock.Instant? = nil, peer: PeerCredentials? = nil
    ) {
        self.service = service
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
    }

    /// containerd sends its namespace under this key (namespaces/ttrpc.go).
    public static let namespaceKey = "containerd-namespace-ttrpc"

    public var namespace: String? { metadata[Self.namespaceKey]?.first }
}

public typealias MethodHandler = @Sendable (RequestContext, [UInt8]) async throws -> [UInt8]

/// Handlers by service and method, built before the server starts (never mutated after).
public struct ServiceRegistry: Sendable {
    public typealias RequestDecoder = @Sendable ([UInt8]) throws -> any SwiftProtobuf.Message
    private var services: [String: [String: MethodHandler]] = [:]
    /// The payload decoder of each typed method: the very decoding its handler does first.
    private var decoders: [String: [String: RequestDecoder]] = [:]

    public init() {}

    public mutating func register(service: String, method: String, handler: @escaping MethodHandler) {
        services[service, default: [:]][method] = handler
    }

    /// Registers a handler over protobuf messages; a payload that does not decode as
    /// `Request` is answered with InvalidArgument naming the message type.
    public mutating func register<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, _ handler: @escaping @Sendable (RequestContext, Request) async throws -> Response
    ) {
        decoders[service, default: [:]][method] = { payload in try Request(serializedBytes: payload) }
        register(service: service, method: method) { context, payload in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw TTRPCStatus(.invalidArgument, "\(service)/\(method): cannot decode \(Request.protoMessageName): \(error)")
            }
            return try await handler(context, request).serializedBytes()
        }
    }

    /// Every (service, method) with a typed handler, and its request decoder (for fuzzing the
    /// request decoding without running handlers).
    public var requestDecoders: [(service: String, method: String, decode: RequestDecoder)] {
        decoders.flatMap { service, methods in methods.map { (service: service, method: $0.key, decode: $0.value) } }
            .sorted { ($0.service, $0.method) < ($1.service, $1.method) }
    }

    /// The handler, or the Unimplemented status Go's ttrpc gives ("service X" / "method X").
    func lookup(service: String, method: String) -> Result<MethodHandler, TTRPCStatus> {
        guard let methods = services[service] else {
            return .failure(TTRPCStatus(.unimplemented, "service \(service)"))
        }
        guard let handler = methods[method] else {
            return .failure(TTRPCStatus(.unimplemented, "method \(method)"))
        }
        return .success(handler)
    }
}

public struct ServerOptions: Sendable {
    /// Peers allowed to connect (SO_PEERCRED uid); nil admits anyone. The default admits
    /// only the server's own uid: the shim runs as root and only containerd should call it.
    public var allowedPeerUIDs: Set<UInt32>? = [ProcessIdentity.uid]
    /// Requests served at once on one connection; beyond this a request is answered with
    /// ResourceExhausted instead of queueing without bound behind a wedged handler.
    public var maxInFlightPerConnection = 1024
    /// Receives one line per notable connection event (refused peer, malformed input).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Told of every request answered: service, method, time taken, status code (0 is OK).
    /// For step timings in the debug log and for request counters.
    public var onAnswered: @Sendable (_ service: String, _ method: String, _ took: Duration, _ code: Int32) -> Void = {
        _, _, _, _ in
    }

    /// Called once a request or response of at least `largeMessageBytes` has been handled
    /// (the shim gives the heap memory back then: one large frame should not stay resident).
    public var afterLargeMessage: @Sendable () -> Void = {}
    public var largeMessageBytes = 1 << 20

    public init() {}
}

/// A ttrpc server on a Unix socket. Requests on a connection run concurrently, each as its
/// own task, bounded by the request's `timeout_nano`.
public final class TTRPCServer: Sendable {
    private let registry: ServiceRegistry
    private let options: ServerOptions
    private let givenLoop: FrameLoop?
    private let state = Mutex(State())

    private struct State {
        var listener: (fd: Int32, tag: UInt64)?
        var listenerPath: String?
        var loop: FrameLoop?
        var connections: [ObjectIdentifier: ServerConnection] = [:]
        var shutDown = false
        /// A descriptor held in reserve: out of descriptors, it is closed to accept (and drop)
        /// a pending connection, so the listener does not stay readable and spin the loop.
        var reserve: Int32 = -1
    }

    /// `loop` serves the listener and every connection (the shim shares it with its events
    /// client); without one the server makes its own at `serve`.
    public init(registry: ServiceRegistry, options: ServerOptions = ServerOptions(), loop: FrameLoop? = nil) {
        self.registry = registry
        self.options = options
        self.givenLoop = loop
    }

    /// Binds `path` (mode 0600) and starts serving.
    public func listen(path: String) throws(Errno) {
        let fd = try UnixSocket.listen(path: path)
        state.withLock { $0.listenerPath = path }
        try serve(listener: fd)
    }

    /// Serves on an already listening descriptor, e.g. one inherited as fd 3.
    public func serve(listener fd: Int32) throws(Errno) {
        let loop: FrameLoop
        do throws(Errno) {
            if let givenLoop { loop = givenLoop } else { loop = try FrameLoop.frames() }
        } catch {
            UnixSocket.close(fd)
            throw error
        }
        let reserve = (try? FileDescriptor.openNull()) ?? -1
        let alreadyShutDown = state.withLock { state -> Bool in
            if state.shutDown { return true }
            state.loop = loop
            state.reserve = reserve
            return false
        }
        if alreadyShutDown {
            UnixSocket.close(fd)
            return
        }
        let tag: UInt64
        do throws(Errno) {
            tag = try loop.register(fd, ListenerHandler(server: self, fd: fd))
        } catch {
            UnixSocket.close(fd)
            throw error
        }
        let closeNow = state.withLock { state -> Bool in
            if state.shutDown { return true }
            state.listener = (fd, tag)
            return false
        }
        if closeNow {
            loop.perform {
                loop.unregister(fd, tag: tag)
                UnixSocket.close(fd)
            }
        }
    }

    /// Returns once every request in flight on every connection has been answered, or after
    /// `timeout`: a shim shutting down closes its sockets right after its last answers went
    /// out, without guessing how long that takes.
    public func waitUntilAnswered(within timeout: Duration) async {
        let connections = state.withLock { Array($0.connections.values) }
        _ = await waitAtMost(timeout) {
            for connection in connections { await connection.waitUntilAnswered() }
        }
    }

    /// Number of open connections (for tests and `warden ps`).
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Stops accepting, closes every connection and cancels the requests in flight.
    /// The socket file, if this server created it, is removed.
    public func shutdown() {
        let (listener, path, connections, loop) = state.withLock { state in
            state.shutDown = true
            let result = (state.listener, state.listenerPath, Array(state.connections.values), state.loop)
            state.listener = nil
            if state.reserve >= 0 { FileDescriptor.close(state.reserve) }
            state.reserve = -1
            return result
        }
        if let listener, let loop {
            // Closed on the loop thread, which may be accepting on it right now.
            loop.perform {
                loop.unregister(listener.fd, tag: listener.tag)
                UnixSocket.close(listener.fd)
            }
        }
        if let path { UnixSocket.remove(path: path) }
        for connection in connections { connection.close() }
    }

    /// The listener is readable: admit every pending connection (on the loop thread).
    fileprivate func acceptAvailable(_ listener: Int32) {
        while true {
            let fd: Int32
            do {
                fd = try UnixSocket.accept(listener)
            } catch {
                if error.code == Errno.EAGAIN || state.withLock({ $0.shutDown }) { return }
                if error.code == Errno.EMFILE || error.code == Errno.ENFILE, dropOneConnection(listener) {
                    options.log("ttrpc: out of file descriptors (\(error)): dropped a new connection")
                    continue
                }
                options.log("ttrpc: accept failed: \(error)")
                return
            }
            admit(fd)
        }
    }

    /// Accepts one pending connection with the reserve descriptor's slot and closes it at once.
    private func dropOneConnection(_ listener: Int32) -> Bool {
        state.withLock { state -> Bool in
            guard state.reserve >= 0 else { return false }
            FileDescriptor.close(state.reserve)
            let dropped = try? UnixSocket.accept(listener)
            if let dropped { UnixSocket.close(dropped) }
            state.reserve = (try? FileDescriptor.openNull()) ?? -1
            return dropped != nil
        }
    }

    private func admit(_ fd: Int32) {
        let peer = try? UnixSocket.peerCredentials(fd)
        if let allowed = options.allowedPeerUIDs {
            guard let peer, allowed.contains(peer.uid) else {
                options.log("ttrpc: refused connection from uid \(peer.map { String($0.uid) } ?? "unknown") pid \(peer.map { String($0.pid) } ?? "unknown")")
                UnixSocket.close(fd)
                return
            }
        }
        let connection = ServerConnection(registry: registry, options: options, peer: peer)
        let key = ObjectIdentifier(connection)
        let (admitted, loop) = state.withLock { state -> (Bool, FrameLoop?) in
            guard !state.shutDown, let loop = state.loop else { return (false, nil) }
            state.connections[key] = connection
            return (true, loop)
        }
        guard admitted, let loop else {
            UnixSocket.close(fd)
            return
        }
        do {
            try connection.start(fd: fd, loop: loop) { [weak self] in
                _ = self?.state.withLock { $0.connections.removeValue(forKey: key) }
            }
        } catch {
            options.log("ttrpc: cannot serve connection: \(error)")
            _ = state.withLock { $0.connections.removeValue(forKey: key) }
        }
    }
}

/// The listening socket's handler on the loop.
private final class ListenerHandler: FrameLoop.Handler {
    private weak let server: TTRPCServer?
    private let fd: Int32

    init(server: TTRPCServer, fd: Int32) {
        self.server = server
        self.fd = fd
    }

    func ready(_ events: UInt32) {
        server?.acceptAvailable(fd)
    }
}
