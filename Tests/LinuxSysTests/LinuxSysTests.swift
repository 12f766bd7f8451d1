import LinuxSys
import Synchronization
import Testing
import WardenTestSupport

@Suite(.timeLimit(.minutes(1))) struct UnixSocketTests {
    @Test func listenConnectAndPeerCredentials() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let listener = try UnixSocket.listen(path: dir.file("l.sock"))
        defer { UnixSocket.close(listener) }
        #expect(try fileMode(dir.file("l.sock")) & 0o777 == 0o600)
        let client = try UnixSocket.connect(path: "unix://" + dir.file("l.sock"))
        defer { UnixSocket.close(client) }
        let server = try UnixSocket.accept(listener)
        defer { UnixSocket.close(server) }
        let peer = try UnixSocket.peerCredentials(server)
        #expect(peer.pid == ProcessIdentity.pid)
        #expect(peer.uid == ProcessIdentity.uid)
        try UnixSocket.writeAll(client, Array("ping".utf8))
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = try buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(server, into: raw) }
        #expect(Array(buffer[0..<count]) == Array("ping".utf8))
    }

    @Test func tooLongPathIsNamed() throws {
        let path = "/tmp/" + String(repeating: "x", count: 120)
        #expect(throws: Errno(code: Errno.ENAMETOOLONG, call: "bind(\(path))")) {
            try UnixSocket.listen(path: path)
        }
    }

    @Test func connectToMissingSocketFailsWithENOENT() throws {
        do {
            _ = try UnixSocket.connect(path: "/tmp/warden-no-such-socket")
            Issue.record("connected to nothing")
        } catch {
            #expect(error.code == Errno.ENOENT)
        }
    }

    @Test func replacesStaleSocketFile() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let first = try UnixSocket.listen(path: dir.file("s.sock"))
        UnixSocket.close(first)  // leaves the file behind, as a crashed shim would
        let second = try UnixSocket.listen(path: dir.file("s.sock"))
        UnixSocket.close(second)
    }

    @Test func shutdownWakesABlockedAccept() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let listener = try UnixSocket.listen(path: dir.file("a.sock"))
        defer { UnixSocket.close(listener) }
        let result = try await withTimeout(.seconds(5), "accept wakeup") {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                do {
                    try DetachedThread.spawn(name: "accept-test") {
                        do {
                            continuation.resume(returning: try UnixSocket.accept(listener))
                        } catch {
                            continuation.resume(returning: -((error as? Errno)?.code ?? 1))
                        }
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
                Task {
                    try await Task.sleep(for: .milliseconds(100))
                    UnixSocket.shutdown(listener)
                }
            }
        }
        #expect(result < 0)
    }
}

