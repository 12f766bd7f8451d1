import Foundation
import Synchronization
import Testing
import WardenTestSupport

/// The harness's own cleanup path: a test that runs past its limit still has its containerd,
/// shim and sandbox killed by PID and its mounts detached (ShimHarness.run's abandon).
@Suite(.serialized)
struct HarnessTests {
    @Test func aTestThatTimesOutStillCleansUp() async throws {
        guard ShimHarness.available(.fake) else { return }
        let seen = Mutex<(dir: String, containerd: Int32)?>(nil)
        let began = ContinuousClock.now
        await #expect(throws: TestTimedOut.self) {
            try await ShimHarness.run(.fake, limit: .seconds(8), "a test that hangs") { h in
                _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "stays", "sleep", "1000"])
                try await h.waitForTask("stays", status: "RUNNING")
                seen.withLock { $0 = (h.containerd.dir.path, h.containerd.process.pid) }
                // A step that never ends and ignores cancellation, as a hung ctr call would.
                await UncancellableGate().wait()
            }
        }
        #expect(ContinuousClock.now - began < .seconds(30), "run returned at its limit, not when the body ended")
        let (dir, containerd) = try #require(seen.withLock { $0 })
        #expect(kill(containerd, 0) != 0, "containerd (pid \(containerd)) still runs")
        // SIGKILLed by abandon; give the kernel a moment to take them down.
        var left = livingProcesses(mentioning: dir)
        for _ in 0..<40 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            left = livingProcesses(mentioning: dir)
        }
        #expect(left.isEmpty, "processes of the timed-out test left: \(left)")
        #expect(mountPoints(under: dir).isEmpty, "mounts of the timed-out test left: \(mountPoints(under: dir))")
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.removeItem(atPath: dir + ".log")
    }
}
