import Deadlines
import TTRPC

public struct TestTimedOut: Error, CustomStringConvertible {
    public let limit: Duration
    public let what: String
    public var description: String { "\(what) did not finish within \(limit)" }

    public init(limit: Duration, what: String) {
        self.limit = limit
        self.what = what
    }
}

/// Every async test step runs under this, so a regression hangs for seconds, not forever.
public func withTimeout<T: Sendable>(
    _ limit: Duration, _ what: String = "test step", _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withDeadline(.now + limit, onTimeout: { TestTimedOut(limit: limit, what: what) }, operation)
}

import Glibc

/// Blocks the calling thread (for handlers that simulate a wedged, uncancellable call).
public func usleepForTests(_ microseconds: UInt32) { usleep(microseconds) }

/// Permission bits and type of a file.
public func fileMode(_ path: String) throws -> UInt32 {
    var info = stat()
    guard stat(path, &info) == 0 else { throw TestTimedOut(limit: .zero, what: "stat \(path)") }
    return info.st_mode
}
