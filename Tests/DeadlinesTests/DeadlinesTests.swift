import Deadlines
import Testing
import WardenTestSupport

@Suite(.timeLimit(.minutes(1))) struct DeadlinesTests {
    @Test func waitAtMostReturnsTheResultInTime() async {
        #expect(await waitAtMost(.seconds(5)) { 42 } == 42)
    }

    /// An operation that ignores cancellation is abandoned: the wait ends at the deadline.
    @Test func waitAtMostGivesUpAtTheDeadline() async {
        let started = ContinuousClock.now
        let result: Int? = await waitAtMost(.milliseconds(100)) {
            await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }  // never resumes
            return 1
        }
        #expect(result == nil)
        #expect(ContinuousClock.now - started < TestBounds.cutShort(.milliseconds(100)))
    }

    @Test func withDeadlineThrowsTheTimeoutError() async {
        struct Late: Error {}
        await #expect(throws: Late.self) {
            try await withDeadline(.now + .milliseconds(50), onTimeout: { Late() }) {
                try await Task.sleep(for: .seconds(10))
            }
        }
    }
}
