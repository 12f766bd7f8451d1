import Foundation
import LinuxSys
import SwiftProtobuf
import Testing
import TTRPC
import WardenTestSupport

/// Warden's ttrpc against Go's (containerd/ttrpc 1.1.1, as linked into containerd 1.6.20),
/// both directions, using tests/fixtures/ttrpc-interop.
@Suite(.timeLimit(.minutes(2)), .enabled(if: Interop.goFixtureAvailable, "Go ttrpc fixture not built (scripts/test.sh builds it)"))
struct GoTTRPCInteropTests {
    /// The Go client's checks against the Swift server: unary, 64 concurrent calls, error
    /// status, deadline, unknown method/service, a 1 MiB payload.
    @Test func goClientAgainstSwiftServer() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = TTRPCServer(registry: EchoService.registry())
        try server.listen(path: dir.file("swift.sock"))
        defer { server.shutdown() }
        let client = try ChildProcess(Interop.goFixture, ["client", dir.file("swift.sock")])
        let status = try await client.waitForExit(timeout: .seconds(60))
        let output = client.outputText
        #expect(status == 0, "Go client reported:\n\(output)")
        for check in ["unary", "concurrent", "error-status", "deadline-exceeded", "unknown-method", "large-payload"] {
            #expect(output.contains("PASS \(check)"), "missing PASS \(check) in:\n\(output)")
        }
        #expect(!processExists(client.pid))
    }

    @Test func swiftClientAgainstGoServer() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("go.sock")
        let goServer = try ChildProcess(Interop.goFixture, ["server", path])
        do {
            try await goServer.waitForOutput(containing: "listening")
            try await withTimeout(.seconds(60)) { try await Self.runChecks(path: path) }
        } catch {
            await goServer.stop()
            throw error
        }
        await goServer.stop()
        // Leak audit: the peer is gone and removed its socket.
        #expect(!processExists(goServer.pid))
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    static func runChecks(path: String) async throws {
        let client = try TTRPCClient.connect(path: path)
        defer { client.close() }

        // unary, with namespace metadata
        #expect(try await client.echoCall("Echo", "hello", metadata: [(RequestContext.namespaceKey, "interop")]) == "hello|ns=interop")

        // concurrent calls on one connection, answered out of order
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<64 {
                group.addTask {
                    if i % 2 == 1 { _ = try await client.echoCall("Sleep", String(10 + i)) }
                    #expect(try await client.echoCall("Echo", "call-\(i)") == "call-\(i)|ns=")
                }
            }
            try await group.waitForAll()
        }

        // error status with message
        await #expect(throws: TTRPCStatus(.notFound, "container \"x\" not found")) {
            try await client.echoCall("Fail", "container \"x\" not found")
        }

        // deadline exceeded, then the connection is still usable
        let start = ContinuousClock.now
        do {
            _ = try await client.echoCall("Sleep", "5000", timeout: .milliseconds(300))
            Issue.record("a 5 s sleep answered within 300 ms")
        } catch let status as TTRPCStatus {
            #expect(status.code == .deadlineExceeded)
        }
        #expect(ContinuousClock.now - start < TestBounds.cutShort(.milliseconds(300)))
        #expect(try await client.echoCall("Echo", "after") == "after|ns=")

        // unknown method and service
        await #expect(throws: TTRPCStatus(.unimplemented, "method Nope")) { try await client.echoCall("Nope", "") }
        await #expect(throws: TTRPCStatus(.unimplemented, "service warden.interop.v1.Missing")) {
            _ = try await client.call(service: "warden.interop.v1.Missing", method: "Echo", payload: [])
        }

        // 1 MiB payload
        let big = String(repeating: "w", count: 1 << 20)
        #expect(try await client.echoCall("Echo", big) == big + "|ns=")

        // The Go server enforces the timeout_nano Warden encodes (no client-side timer here).
        let raw = try RawConnection(path: path)
        let sleep: [UInt8] = try Google_Protobuf_StringValue("5000").serializedBytes()
        let sent = ContinuousClock.now
        try raw.send(RawConnection.requestFrame(streamID: 1, service: EchoService.name, method: "Sleep", payload: sleep, timeoutNano: 200_000_000))
        let response = try await raw.readResponse()
        #expect(response?.status.code == .deadlineExceeded)
        #expect(ContinuousClock.now - sent < TestBounds.cutShort(.milliseconds(200)))
    }
}
