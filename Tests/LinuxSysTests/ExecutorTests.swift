import Foundation
import Testing
import WardenTestSupport

/// The shim's executor (CLinuxSys/executor.c, GlobalExecutor), in a process of its own
/// (executor-probe): jobs and the shim's timers run on it and not on libdispatch, a cancelled
/// sleep ends at once and leaves no timer, a job still runs when every worker is blocked, and
/// an idle process wakes up not once.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ExecutorTests {
    static var probe: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/executor-probe"
    }

    func run(_ arguments: [String]) async throws -> String {
        #expect(FileManager.default.isExecutableFile(atPath: Self.probe), "\(Self.probe) not built")
        let result = try await runCommand(Self.probe, arguments, timeout: .seconds(20))
        #expect(result.status == 0, "executor-probe \(arguments): \(result.output)")
        return result.output
    }

    /// libdispatch's threads (com.apple.root.*, comm shows their ends) must never appear.
    func expectNoDispatchThreads(_ output: String) {
        #expect(!output.contains("qos"), "libdispatch threads: \(output)")
    }

    @Test func aSleepEndsOnTimeOnTheExecutor() async throws {
        let output = try await run(["sleep"])
        let slept = try #require(output.firstMatch(of: /slept (\d+) ms/).flatMap { Int($0.1) })
        #expect(slept >= 100 && slept < 600, "\(output)")
        expectNoDispatchThreads(output)
    }

    @Test func aCancelledSleepEndsAtOnce() async throws {
        let output = try await run(["cancel"])
        #expect(output.contains("cancelled true"), "\(output)")
        expectNoDispatchThreads(output)
    }

    @Test func theLongestSleepDoesNotWakeAtOnce() async throws {
        let output = try await run(["forever"])
        #expect(output.contains("forever was still asleep"), "\(output)")
    }

    @Test func aJobRunsWhenEveryWorkerIsBlocked() async throws {
        let output = try await run(["blocked"])
        let waited = try #require(output.firstMatch(of: /after (\d+) ms/).flatMap { Int($0.1) })
        // The blocked workers poll for 3 s; a worker is added after 50 ms of no progress.
        #expect(waited < 1500, "\(output)")
        #expect(output.components(separatedBy: "\"worker\"").count - 1 > 2, "a worker was added: \(output)")
    }

    @Test func anIdleProcessDoesNotWakeUp() async throws {
        let output = try await run(["idle", "3"])
        #expect(output.contains("idle wakeups []"), "\(output)")
        expectNoDispatchThreads(output)
    }
}
