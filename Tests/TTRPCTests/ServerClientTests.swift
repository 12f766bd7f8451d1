import LinuxSys
import SwiftProtobuf
import Synchronization
import Testing
import WardenTestSupport
@testable import TTRPC

/// Swift server and Swift client over a real Unix socket.
@Suite(.timeLimit(.minutes(1))) struct ServerClientTests {
    /// Starts a server with the echo service (plus `extra` handlers) on a fresh socket.
    static func withServer(
        options: ServerOptions = ServerOptions(),
        extra: (inout ServiceRegistry) -> Void = { _ in },
        _ body: @escaping @Sendable (TTRPCServer, String) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var registry = EchoService.registry()
        extra(&registry)
        let server = TTRPCServer(registry: registry, options: options)
        let path = dir.file("s.sock")
        try server.listen(path: path)
        defer { server.shutdown() }
        try await withTimeout(.seconds(20)) { try await body(server, path) }
    }

    @Test func unaryCallCarriesNamespaceMetadata() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            let reply = try await client.echoCall("Echo", "hello", metadata: [(RequestContext.namespaceKey, "k8s.io")])
            #expect(reply == "hello|ns=k8s.io")
        }
    }

    @Test func socketIsOwnerOnly() async throws {
        try await Self.withServer { _, path in
            let mode = try fileMode(path)
            #expect(mode & 0o777 == 0o600)
        }
    }

    @Test func concurrentCallsOnOneConnectionAnswerOutOfOrder() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        // Early calls sleep longest, so answers arrive in reverse order.
                        _ = try await client.echoCall("Sleep", String(300 - i * 2))
                        let reply = try await client.echoCall("Echo", "call-\(i)")
                        #expect(reply == "call-\(i)|ns=")
                    }
                }
                try await group.waitForAll()
            }
            // Served concurrently: far less than the 20 s the sleeps add up to.
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    @Test func errorStatusKeepsCodeAndMessage() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            await #expect(throws: TTRPCStatus(.notFound, "container \"x\" not found")) {
                try await client.echoCall("Fail", "container \"x\" not found")
            }
        }
    }

    @Test func unknownServiceAndMethodAreUnimplemented() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            await #expect(throws: TTRPCStatus(.unimplemented, "method Nope")) {
                try await client.echoCall("Nope", "")
            }
            await #expect(throws: TTRPCStatus(.unimplemented, "service warden.Missing")) {
                _ = try await client.call(service: "warden.Missing", method: "Echo", payload: [])
            }
            // The connection survives both.
            #expect(try await client.echoCall("Echo", "still") == "still|ns=")
        }
    }

    @Test func clientDeadlineReturnsOnTime() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            let start = ContinuousClock.now
            do {
                _ = try await client.echoCall("Sleep", "10000", timeout: .milliseconds(200))
                Issue.record("a 10 s sleep answered within 200 ms")
            } catch let status as TTRPCStatus {
                #expect(status.code == .deadlineExceeded)
            }
            #expect(ContinuousClock.now - start < TestBounds.cutShort(.milliseconds(200)))
            #expect(try await client.echoCall("Echo", "after") == "after|ns=")
        }
    }

    /// The server enforces `timeout_nano` itself: a handler that ignores cancellation is
    /// abandoned and the client still gets DeadlineExceeded at the deadline.
    @Test func serverHonoursTimeoutNano() async throws {
        let released = UncancellableGate()
        try await Self.withServer(extra: { registry in
            registry.register(service: "warden.test", method: "Wedge") { _, _ in
                // Ignores cancellation, like a runsc call stuck in the kernel.
                await released.wait()
                return []
            }
        }) { _, path in
            defer { released.open() }
            let raw = try RawConnection(path: path)
            let start = ContinuousClock.now
            try raw.send(RawConnection.requestFrame(streamID: 1, service: "warden.test", method: "Wedge", timeoutNano: 150_000_000))
            let response = try await raw.readResponse()
            #expect(response?.streamID == 1)
            #expect(response?.status.code == .deadlineExceeded)
            #expect(ContinuousClock.now - start < TestBounds.cutShort(.milliseconds(150)))
        }
    }

    @Test func oversizedRequestThenValidOneOnSameConnection() async throws {
        try await Self.withServer { _, path in
            let raw = try RawConnection(path: path)
            var oversized: [UInt8] = [0x00, 0x40, 0x00, 0x01, 0, 0, 0, 1, 0x01, 0x00]
            oversized += [UInt8](repeating: 0, count: FrameHeader.maxDataLength + 1)
            try raw.send(oversized)
            let refused = try await raw.readResponse()
            #expect(refused?.streamID == 1)
            #expect(refused?.status.code == .resourceExhausted)
            let echo = try Google_Protobuf_StringValue("ok").serializedBytes() as [UInt8]
            try raw.send(RawConnection.requestFrame(streamID: 3, service: EchoService.name, method: "Echo", payload: echo))
            let answered = try #require(try await raw.readResponse())
            #expect(answered.streamID == 3)
            #expect(answered.status.code == .ok)
            #expect(try Google_Protobuf_StringValue(serializedBytes: answered.payload).value == "ok|ns=")
        }
    }

    /// Each malformed input gets an InvalidArgument answer, then the connection closes;
    /// the server keeps serving other connections.
    @Test(arguments: MalformedInput.allCases)
    func malformedInputClosesOnlyThatConnection(_ input: MalformedInput) async throws {
        try await Self.withServer { server, path in
            let raw = try RawConnection(path: path)
            try raw.send(input.bytes())
            let response = try await raw.readResponse()
            if input.expectsAnswer {
                #expect(response?.status.code == .invalidArgument, "\(input)")
                #expect(try await raw.readFrame() == nil, "connection should close after \(input)")
            } else {
                #expect(response == nil, "connection should close after \(input)")
            }
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            #expect(try await client.echoCall("Echo", "next") == "next|ns=")
            _ = server
        }
    }

    @Test func streamingRequestIsRefusedWithStatus() async throws {
        try await Self.withServer { _, path in
            let raw = try RawConnection(path: path)
            try raw.send(RawConnection.requestFrame(streamID: 1, service: EchoService.name, method: "Echo", flags: [.remoteOpen]))
            let response = try await raw.readResponse()
            #expect(response?.status.code == .unimplemented)
        }
    }

    @Test func refusesPeersWithOtherUIDs() async throws {
        var options = ServerOptions()
        options.allowedPeerUIDs = [ProcessIdentity.uid &+ 4242]
        try await Self.withServer(options: options) { server, path in
            let client = try TTRPCClient.connect(path: path)
            await #expect(throws: TTRPCStatus.self) { try await client.echoCall("Echo", "x") }
            #expect(client.isClosed)
            #expect(server.connectionCount == 0)
        }
    }

    @Test func inFlightLimitAnswersResourceExhausted() async throws {
        var options = ServerOptions()
        options.maxInFlightPerConnection = 2
        try await Self.withServer(options: options) { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            let slow1 = Task { try await client.echoCall("Sleep", "1000") }
            let slow2 = Task { try await client.echoCall("Sleep", "1000") }
            try await Task.sleep(for: .milliseconds(200))
            do {
                _ = try await client.echoCall("Echo", "third")
                Issue.record("third call admitted past the limit")
            } catch let status as TTRPCStatus {
                #expect(status.code == .resourceExhausted)
            }
            #expect(try await slow1.value == "slept")
            #expect(try await slow2.value == "slept")
            #expect(try await client.echoCall("Echo", "later") == "later|ns=")
        }
    }

    /// Shutdown cancels handlers in flight and callers see the connection close.
    @Test func shutdownCancelsInFlightAndUnblocksClients() async throws {
        let cancelled = Mutex(false)
        try await Self.withServer(extra: { registry in
            registry.register(service: "warden.test", method: "Park") { _, _ in
                await withTaskCancellationHandler {
                    try? await Task.sleep(for: .seconds(30))
                } onCancel: {
                    cancelled.withLock { $0 = true }
                }
                return []
            }
        }) { server, path in
            let client = try TTRPCClient.connect(path: path)
            let call = Task { try await client.call(service: "warden.test", method: "Park", payload: []) }
            try await Task.sleep(for: .milliseconds(200))
            server.shutdown()
            do {
                _ = try await call.value
                Issue.record("parked call returned normally")
            } catch let status as TTRPCStatus {
                #expect(status.code == .unavailable)
            }
            for _ in 0..<100 where !cancelled.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cancelled.withLock { $0 })
            #expect(throws: Errno.self) { try TTRPCClient.connect(path: path) }
        }
    }

    @Test func closedConnectionFailsPendingCalls() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            let call = Task { try await client.echoCall("Sleep", "5000") }
            try await Task.sleep(for: .milliseconds(100))
            client.close()
            await #expect(throws: TTRPCStatus.self) { try await call.value }
            await #expect(throws: TTRPCStatus.self) { try await client.echoCall("Echo", "x") }
        }
    }

    @Test func cancellingACallerAbandonsOnlyItsStream() async throws {
        try await Self.withServer { _, path in
            let client = try TTRPCClient.connect(path: path)
            defer { client.close() }
            let doomed = Task { try await client.echoCall("Sleep", "5000") }
            try await Task.sleep(for: .milliseconds(50))
            doomed.cancel()
            await #expect(throws: CancellationError.self) { try await doomed.value }
            #expect(try await client.echoCall("Echo", "alive") == "alive|ns=")
        }
    }
}

enum MalformedInput: CaseIterable, Sendable {
    case evenStreamID, reusedStreamID, undecodableRequest, responseFromClient, unknownType, dataOnUnknownStream, httpRequest

    /// HTTP text is not ttrpc at all: no stream to answer on, the connection just closes.
    var expectsAnswer: Bool { self != .httpRequest }

    func bytes() throws -> [UInt8] {
        let echo = try RawConnection.requestFrame(streamID: 1, service: EchoService.name, method: "Echo")
        switch self {
        case .evenStreamID:
            return try RawConnection.requestFrame(streamID: 2, service: EchoService.name, method: "Echo").encoded()
        case .reusedStreamID:
            // The first (valid) call is answered, the reuse is rejected.
            return try echo.encoded() + echo.encoded()
        case .undecodableRequest:
            return try Frame(streamID: 1, type: .request, payload: [0xff, 0xff, 0xff]).encoded()
        case .responseFromClient:
            return try Frame(streamID: 1, type: .response, payload: []).encoded()
        case .unknownType:
            return try Frame(streamID: 1, rawType: 0x7f, flags: [], payload: []).encoded()
        case .dataOnUnknownStream:
            return try Frame(streamID: 5, type: .data, flags: [.remoteClosed], payload: [1]).encoded()
        case .httpRequest:
            return Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        }
    }
}
