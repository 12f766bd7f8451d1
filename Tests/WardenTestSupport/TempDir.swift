import Foundation

/// A short-named directory under /tmp (Unix socket paths must stay under 108 bytes),
/// removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init(_ prefix: String = "wd") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: made)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
