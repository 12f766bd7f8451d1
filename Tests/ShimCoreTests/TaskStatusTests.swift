import Testing

@testable import ShimCore

/// The task state machine: the only moves allowed are containerd's (created → running ⇄
/// paused → stopped) and the shim's failure (created → failed); every other one is refused
/// naming both states.
@Suite(.timeLimit(.minutes(1))) struct TaskStatusTests {
    typealias Status = PodShim.Status

    /// Written out by hand, not derived from the table under test: allowing one more move
    /// (say stopped → running, a task coming back from the dead) fails here.
    static let expected: Set<String> = [
        "created→running", "created→stopped", "created→failed",
        "running→paused", "running→stopped",
        "paused→running", "paused→stopped",
    ]

    @Test func exactlyTheExpectedMovesAreLegal() {
        for from in Status.allCases {
            for to in Status.allCases {
                #expect(from.canMove(to: to) == Self.expected.contains("\(from)→\(to)"), "\(from) → \(to)")
            }
        }
    }

    @Test func anIllegalMoveIsRefusedNamingBothStates() throws {
        #expect(try Status.created.moved(to: .running, "container c1") == .running)
        for (from, to) in [(Status.stopped, Status.running), (.failed, .stopped), (.paused, .failed), (.running, .created)] {
            #expect {
                try from.moved(to: to, "container c1")
            } throws: { error in
                let error = error as? ShimError
                return error?.code == .failedPrecondition && error?.message == "container c1 cannot go from \(from) to \(to)"
            }
        }
    }

    @Test func finalStatesStayFinal() {
        for final in [Status.stopped, .failed] {
            #expect(Status.allCases.allSatisfy { !final.canMove(to: $0) }, "\(final)")
        }
    }
}
