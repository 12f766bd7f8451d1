import ShimCore
import Testing
import TTRPC
import WardenTestSupport

@Suite(.timeLimit(.minutes(1))) struct ShimErrorTests {
    /// errdefs kind → gRPC code, as containerd's errgrpc maps them back.
    @Test(arguments: [
        (ShimError.Code.notFound, StatusCode.notFound),
        (.alreadyExists, .alreadyExists),
        (.failedPrecondition, .failedPrecondition),
        (.invalidArgument, .invalidArgument),
        (.unimplemented, .unimplemented),
        (.deadlineExceeded, .deadlineExceeded),
        (.unavailable, .unavailable),
        (.internal, .internal),
    ])
    func mapsEveryCode(code: ShimError.Code, expected: StatusCode) {
        let status = TTRPCStatus.from(ShimError(code, "task \"a\": boom"))
        #expect(status == TTRPCStatus(expected, "task \"a\": boom"))
    }

    @Test func everyCodeIsCovered() {
        #expect(ShimError.Code.allCases.count == 8)
    }

    /// A ShimError thrown by a handler reaches a ttrpc client with its code and message,
    /// through the server's single conversion point.
    @Test func reachesTheClientThroughTheServer() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var registry = ServiceRegistry()
        registry.register(service: "warden.test", method: "Missing") { _, _ in
            throw ShimError(.notFound, "container \"c1\" not found")
        }
        let server = TTRPCServer(registry: registry)
        try server.listen(path: dir.file("s.sock"))
        defer { server.shutdown() }
        let client = try TTRPCClient.connect(path: dir.file("s.sock"))
        defer { client.close() }
        try await withTimeout(.seconds(10)) {
            await #expect(throws: TTRPCStatus(.notFound, "container \"c1\" not found")) {
                _ = try await client.call(service: "warden.test", method: "Missing", payload: [])
            }
        }
    }

    @Test func unknownErrorsBecomeUnknownNotACrash() {
        struct Odd: Error {}
        #expect(TTRPCStatus.from(Odd()).code == .unknown)
        #expect(TTRPCStatus.from(CancellationError()).code == .cancelled)
    }
}
