import Foundation
import Testing
import WardenTestSupport

/// Issue 16: runsc resolves a container id by prefix among every container in its `--root`,
/// so with one root for the node, `c1` became ambiguous (or worse, the wrong container) once
/// `c10` existed. Warden gives each pod a runsc root of its own; fake-runsc resolves ids as
/// runsc does, so both runtimes would catch a shared root. Every call below names a container
/// whose id is a prefix of another's, in another pod: each must reach its own container.
@Suite(.serialized)
struct IDPrefixTests {
    /// Single-container pods, and pods of two (sandbox, app) whose ids are prefixes across pods.
    static let singles = ["c1", "c10"]
    static let pods = [(sandbox: "p1", app: "app1"), (sandbox: "p10", app: "app10")]
    static var all: [String] { singles + pods.flatMap { [$0.sandbox, $0.app] } }

    @Test(arguments: RuntimeKind.allCases, [false, true])
    func callsNamingAPrefixOfAnotherIdReachOnlyTheirContainer(_ runtime: RuntimeKind, restartContainerd: Bool) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(
            runtime, limit: .seconds(180), "id prefixes (\(runtime), containerd restarted: \(restartContainerd))",
            deadlines: TerminationTests.deadlines
        ) { h in
            try await Self.exercise(h, restartContainerd: restartContainerd)
        }
    }

    static func exercise(_ h: ShimHarness, restartContainerd: Bool) async throws {
        let image = ShimHarness.image
        // Each container writes its own name into its rootfs: an exec that reads it back shows
        // which container it ran in.
        func run(_ id: String, _ annotations: [String] = []) async throws {
            let result = try await h.ctr(["run", "-d"] + h.runtimeFlags + annotations + [
                image, id, "sh", "-c", "echo \(id) > /who; exec sleep 1000",
            ])
            #expect(result.status == 0, "run -d \(id): \(result.output)")
        }
        for id in singles { try await run(id) }
        for pod in pods {
            try await run(pod.sandbox, TerminationTests.podAnnotations("sandbox", pod: pod.sandbox))
            try await run(pod.app, TerminationTests.podAnnotations("container", pod: pod.sandbox))
        }
        for id in all { try await h.waitForTask(id, status: "RUNNING") }

        if restartContainerd {
            try await h.restartContainerd()
            for id in all { try await h.waitForTask(id, status: "RUNNING") }
        }

        // exec and ps reach the container named, whatever else begins with its id.
        for id in all {
            var who = try await h.ctr(["task", "exec", "--exec-id", "who", id, "cat", "/who"])
            for _ in 0..<20 where !who.output.contains(id) && who.status == 0 {
                try await Task.sleep(for: .milliseconds(100))  // the init's write may still be on its way
                who = try await h.ctr(["task", "exec", "--exec-id", "who", id, "cat", "/who"])
            }
            #expect(who.status == 0 && who.output.trimmingCharacters(in: .whitespacesAndNewlines) == id,
                    "exec in \(id) ran in: \(who.output)")
            let ps = try await h.ctr(["task", "ps", id])
            #expect(ps.status == 0, "ps \(id): \(ps.output)")
        }

        // pause/resume of c1 leaves c10 running.
        #expect(try await h.ctr(["task", "pause", "c1"]).status == 0)
        try await h.waitForTask("c1", status: "PAUSED")
        try await h.waitForTask("c10", status: "RUNNING", timeout: .milliseconds(500))
        #expect(try await h.ctr(["task", "resume", "c1"]).status == 0)
        try await h.waitForTask("c1", status: "RUNNING")

        // Killing app1 (in pod p1) leaves app10 (in pod p10) running.
        #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "app1"]).status == 0)
        try await h.waitForTask("app1", status: "STOPPED")
        try await h.waitForTask("app10", status: "RUNNING", timeout: .milliseconds(500))

        // A wedged c1 (its sandbox SIGSTOPped) is stopped within its deadlines; c10 runs on.
        let c1Sandbox = try #require(try await h.taskPid("c1"))
        #expect(kill(c1Sandbox, SIGSTOP) == 0)
        let killStarted = ContinuousClock.now
        let killed = try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"])
        #expect(killed.status == 0, "kill c1: \(killed.output)")
        try await h.waitForTask("c1", status: "STOPPED", timeout: TerminationTests.stopDeadline + .milliseconds(500))
        let stoppedAfter = ContinuousClock.now - killStarted
        #expect(stoppedAfter < TerminationTests.callTimeout + TerminationTests.stopDeadline + .milliseconds(500),
                "wedged c1 stopped after \(stoppedAfter)")
        try await h.waitForTask("c10", status: "RUNNING", timeout: .milliseconds(500))
        let stillThere = try await h.ctr(["task", "exec", "--exec-id", "after", "c10", "cat", "/who"])
        #expect(stillThere.output.trimmingCharacters(in: .whitespacesAndNewlines) == "c10", "c10 after c1's end: \(stillThere.output)")

        // Delete each, the one whose id is a prefix first.
        func remove(_ id: String) async throws {
            let removed = try await h.ctr(["task", "rm", id])
            #expect(removed.status == 0, "task rm \(id): \(removed.output)")
            #expect(try await h.ctr(["container", "rm", id]).status == 0)
        }
        try await remove("c1")
        try await remove("app1")
        try await h.waitForTask("c10", status: "RUNNING", timeout: .milliseconds(500))
        try await h.waitForTask("app10", status: "RUNNING", timeout: .milliseconds(500))
        for id in ["c10", "p1", "p10"] {
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", id]).status == 0)
        }
        for id in ["c10", "p1", "p10", "app10"] { try await h.waitForTask(id, status: "STOPPED") }
        for id in ["c10", "app10", "p1", "p10"] { try await remove(id) }
    }
}
