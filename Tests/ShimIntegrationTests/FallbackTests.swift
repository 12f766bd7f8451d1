import Foundation
import Testing
import WardenTestSupport

/// Paths the shim already promises before the full termination ladder: a SIGKILL that runsc
/// cannot deliver still ends the sandbox (through its pidfd), and a container whose start
/// failed is torn down by Delete. fake-runsc injects the faults; every test ends with the
/// leak audit.
@Suite(.serialized)
struct FallbackTests {
    @Test func sigkillReachesTheSandboxWhenRunscKillHangs() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await withTimeout(.seconds(60), "hung runsc kill") {
            let h = try await ShimHarness.start(.fake, deadlines: "runsc_call_timeout = \"1s\"")
            do {
                _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "wedged", "sleep", "1000"])
                try await h.waitForTask("wedged", status: "RUNNING")
                try "hang-kill\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
                let started = ContinuousClock.now
                let killed = try await h.ctr(["task", "kill", "-s", "SIGKILL", "wedged"])
                #expect(killed.status == 0, "kill: \(killed.output)")
                #expect(ContinuousClock.now - started < .seconds(4), "Kill is bounded by runsc_call_timeout")
                try await h.waitForTask("wedged", status: "STOPPED", timeout: .seconds(5))
                try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
                let removed = try await h.ctr(["task", "rm", "wedged"])
                #expect(removed.status == 0 && removed.output.contains("137"), "rm: \(removed.output)")
                #expect(try await h.ctr(["container", "rm", "wedged"]).status == 0)
                try await h.finish()
            } catch {
                await h.abandon()
                throw error
            }
        }
    }

    @Test func aFailedStartIsCleanedUpByKillAndDelete() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await withTimeout(.seconds(60), "failed start") {
            let h = try await ShimHarness.start(.fake)
            do {
                try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
                try "fail-start\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
                let run = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "nostart", "sleep", "1000"])
                #expect(run.status != 0)
                #expect(run.output.contains("fail-start"), "the runsc error reaches ctr: \(run.output)")
                try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
                // ctr leaves the task created; `task rm -f` is Kill (a never-started container is
                // torn down: runsc delete --force, sandbox SIGKILL) then Delete.
                try await h.waitForTask("nostart", status: "CREATED")
                let removed = try await h.ctr(["task", "rm", "-f", "nostart"])
                #expect(removed.status == 0, "task rm -f: \(removed.output)")
                #expect(try await h.ctr(["container", "rm", "nostart"]).status == 0)
                try await h.finish()
            } catch {
                await h.abandon()
                throw error
            }
        }
    }
}
