import LinuxSys
import SwiftProtobuf
import TTRPC
import Foundation

/// A bare socket speaking bytes, for feeding a server what no well-behaved client sends.
/// Reads happen on a detached thread so a silent server never blocks the test's executor.
public final class RawConnection: @unchecked Sendable {
    public let fd: Int32
    private var decoder = FrameDecoder()

    public init(path: String) throws {
        fd = try UnixSocket.connect(path: path)
    }

    deinit {
        UnixSocket.shutdown(fd)
        UnixSocket.close(fd)
    }

    public func send(_ bytes: [UInt8]) throws {
        try UnixSocket.writeAll(fd, bytes)
    }

    public func send(_ frame: Frame) throws {
        try send(try frame.encoded())
    }

    /// The next frame, or nil when the server closed the connection.
    public func readFrame(timeout: Duration = .seconds(5)) async throws -> Frame? {
        while true {
            if let item = try decoder.next() {
                guard case .frame(let frame) = item else { continue }
                return frame
            }
            let chunk = try await readChunk(timeout: timeout)
            if chunk.isEmpty { return nil }
            decoder.append(chunk)
        }
    }

    /// Reads a response frame and decodes its ttrpc Response.
    public func readResponse(timeout: Duration = .seconds(5)) async throws -> (streamID: UInt32, status: TTRPCStatus, payload: [UInt8])? {
        guard let frame = try await readFrame(timeout: timeout) else { return nil }
        let response = try Ttrpc_Response(serializedBytes: frame.payload)
        let code = StatusCode(rawValue: response.status.code) ?? .unknown
        return (frame.streamID, TTRPCStatus(code, response.status.message), [UInt8](response.payload))
    }

    private func readChunk(timeout: Duration) async throws -> [UInt8] {
        let fd = self.fd
        return try await withTimeout(timeout, "raw socket read") {
            try await withCheckedThrowingContinuation { continuation in
                do {
                    try DetachedThread.spawn(name: "raw-read") {
                        var buffer = [UInt8](repeating: 0, count: 65536)
                        do {
                            let count = try buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(fd, into: raw) }
                            continuation.resume(returning: Array(buffer[0..<count]))
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Builds a request frame the way a ttrpc client would.
    public static func requestFrame(
        streamID: UInt32, service: String, method: String, payload: [UInt8] = [], timeoutNano: Int64 = 0,
        flags: FrameFlags = []
    ) throws -> Frame {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = Data(payload)
        request.timeoutNano = timeoutNano
        return Frame(streamID: streamID, type: .request, flags: flags, payload: try request.serializedBytes())
    }
}
