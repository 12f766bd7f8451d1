import Foundation
import LinuxSys
import Testing
import WardenTestSupport

@testable import ShimCore

/// A console socket's path must fit `sun_path` (107 bytes) whatever the ids: CRI's are 64
/// characters, and `kubectl exec -it` failed with ENAMETOOLONG when the socket sat beside the
/// shim's files under them.
@Suite(.timeLimit(.minutes(1))) struct ConsoleSocketTests {
    static let criID = String(repeating: "a1", count: 32)

    @Test func aShortPathStaysBesideTheScratchFiles() throws {
        let scratch = try TempDir()
        defer { scratch.remove() }
        let socket = try ConsoleSocket.place(name: "c1-e1", scratchDirectory: scratch.path, temporaryBase: "/tmp")
        #expect(socket == ConsoleSocket(path: "\(scratch.path)/console-c1-e1.sock", privateDirectory: nil))
    }

    /// The ids of a CRI exec: the path fits, a socket can be bound and reached there, and
    /// removing it leaves nothing (its private directory included).
    @Test func criIDsGetAPrivateDirectoryThatFits() throws {
        let base = try TempDir()
        defer { base.remove() }
        let scratch = "/run/containerd/warden/shim/k8s.io-\(Self.criID)"
        let socket = try ConsoleSocket.place(
            name: "\(Self.criID)-\(Self.criID)", scratchDirectory: scratch, temporaryBase: base.path)
        #expect(socket.path.utf8.count <= ConsoleSocket.maximumPathBytes)
        let directory = try #require(socket.privateDirectory)
        #expect(socket.path.hasPrefix(directory + "/"))
        var info = stat()
        #expect(stat(directory, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)
        let listener = try UnixSocket.listen(path: socket.path, mode: 0o600, backlog: 1)
        let client = try UnixSocket.connect(path: socket.path)
        UnixSocket.close(client)
        UnixSocket.close(listener)
        socket.remove()
        #expect(Directories.entries(base.path).isEmpty)
    }

    /// Two processes with a terminal at once never share a directory.
    @Test func eachProcessHasItsOwnDirectory() throws {
        let base = try TempDir()
        defer { base.remove() }
        let scratch = "/run/containerd/warden/shim/k8s.io-\(Self.criID)"
        let first = try ConsoleSocket.place(name: "\(Self.criID)-1", scratchDirectory: scratch, temporaryBase: base.path)
        let second = try ConsoleSocket.place(name: "\(Self.criID)-2", scratchDirectory: scratch, temporaryBase: base.path)
        #expect(first.privateDirectory != second.privateDirectory)
        first.remove()
        second.remove()
        #expect(Directories.entries(base.path).isEmpty)
    }

    /// A temp directory too deep for any socket is refused with a clear error, and nothing stays.
    @Test func aTemporaryBaseTooLongIsRefused() throws {
        let base = try TempDir()
        defer { base.remove() }
        let deep = base.path + "/" + String(repeating: "d", count: 100)
        try Directories.make(deep)
        #expect(throws: Errno.self) {
            try ConsoleSocket.place(name: Self.criID, scratchDirectory: deep, temporaryBase: deep)
        }
        #expect(Directories.entries(deep).isEmpty)
    }
}
