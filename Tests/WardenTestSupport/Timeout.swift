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
import Synchronization

/// A wait that ignores cancellation until `open()` (a handler simulating a wedged call). It parks
/// the task instead of blocking a thread: a sleeping loop would hold one of the cooperative pool's
/// two threads on a 2-core machine and stall every other test running beside it for seconds.
public final class UncancellableGate: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    public func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    public func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Permission bits and type of a file.
public func fileMode(_ path: String) throws -> UInt32 {
    var info = stat()
    guard stat(path, &info) == 0 else { throw TestTimedOut(limit: .zero, what: "stat \(path)") }
    return info.st_mode
}

/// Allowance added to a deadline when a test checks that the deadline cut a hang short.
/// The hangs in those tests last far longer (5 s or until the step's timeout), so the check still
/// fails when the deadline does not fire; the slack only absorbs scheduling on a loaded machine
/// (a fresh 2-core CI machine once stalled every parallel test for 2 s while the unit suites
/// started). Speed is measured in scripts/bench.sh, not asserted here.
public enum TestBounds {
    public static let schedulingSlack: Duration = .seconds(3)

    /// `deadline` plus the slack.
    public static func cutShort(_ deadline: Duration) -> Duration { deadline + schedulingSlack }
}
