import Foundation
import LinuxSys
import Testing
import WardenTestSupport

@testable import ShimCore

/// Closing a process's stdio is bounded by its grace as a whole, however many of its streams
/// stay open (a process of the pod that outlives its container holds them).
@Suite(.timeLimit(.minutes(1))) struct ProcessIOTests {
    @Test func closeIsBoundedByOneGraceForAllItsStreams() async throws {
        let dir = try TempDir("wpio")
        defer { dir.remove() }
        for name in ["stdout", "stderr"] { #expect(mkfifo(dir.file(name), 0o600) == 0) }
        let io = try ProcessIO.open(
            ProcessIO.Paths(stdin: "", stdout: dir.file("stdout"), stderr: dir.file("stderr"), terminal: false),
            name: "app", scratchDirectory: dir.path, containerID: "app", namespace: "k8s.io",
            supervisor: InMemorySupervision(), copier: try StdioCopier())
        let stdio = try #require(io.processStdio)
        // What a process still running holds: the write ends of both pipes.
        let held = [dup(stdio.stdout), dup(stdio.stderr)]
        defer { held.forEach { _ = close($0) } }
        #expect(held.allSatisfy { $0 >= 0 })
        io.handedOver()
        // Long enough that a loaded machine's late timers (0.5 s seen with the unit suite
        // running in parallel) stay well short of the second grace the old close took.
        let grace: Duration = .milliseconds(1500)
        let began = ContinuousClock.now
        await io.close(grace: grace)
        let took = ContinuousClock.now - began
        #expect(took >= grace, "closed before the streams ended or the grace ran out: \(took)")
        // Two streams each given the whole grace would take 3 s.
        #expect(took < grace + .milliseconds(900), "close took \(took) for a grace of \(grace)")
    }
}
