import Foundation
import LinuxSys
import Synchronization

/// A sandbox control server (gVisor's urpc) played by a thread: each connection reads one
/// request object and does what `respond` says (SandboxControlTests, ChannelRuntimeTests).
public final class ScriptedServer: Sendable {
    public enum Reply: Sendable {
        case answer(String)
        case answerThenClose(String)
        case hang
    }

    public let path: String
    private let dir: TempDir
    private let listener: Int32
    private let counts = Mutex((connections: 0, requests: 0, hangUps: 0))

    public var connections: Int { counts.withLock { $0.connections } }
    public var requests: Int { counts.withLock { $0.requests } }
    public var hangUps: Int { counts.withLock { $0.hangUps } }

    public init(under subdirectory: String? = nil, name: String = "control.sock", respond: @escaping @Sendable (String) -> Reply) throws {
        dir = try TempDir()
        if let subdirectory { try Directories.make(dir.file(subdirectory)) }
        path = dir.file(subdirectory.map { "\($0)/\(name)" } ?? name)
        listener = try UnixSocket.listen(path: path)
        let listener = self.listener
        try DetachedThread.spawn(name: "control-server") { [self] in
            while let connection = try? UnixSocket.accept(listener) {
                counts.withLock { $0.connections += 1 }
                try? DetachedThread.spawn(name: "control-conn") {
                    var received: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while (try? JSONSerialization.jsonObject(with: Data(received))) == nil {
                        let count = (try? buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(connection, into: raw) }) ?? 0
                        if count <= 0 { break }
                        received += buffer[0..<count]
                    }
                    self.counts.withLock { $0.requests += 1 }
                    let reply = respond(String(decoding: received, as: UTF8.self))
                    switch reply {
                    case .answer(let text):
                        try? UnixSocket.writeAll(connection, Array(text.utf8))
                    case .answerThenClose(let text):
                        try? UnixSocket.writeAll(connection, Array(text.utf8))
                        UnixSocket.close(connection)
                        return
                    case .hang: break
                    }
                    // Held until the client hangs up.
                    while ((try? buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(connection, into: raw) }) ?? 0) > 0 {}
                    self.counts.withLock { $0.hangUps += 1 }
                    UnixSocket.close(connection)
                }
            }
        }
    }

    public func stop() {
        UnixSocket.shutdown(listener)
        UnixSocket.close(listener)
        dir.remove()
    }
}
