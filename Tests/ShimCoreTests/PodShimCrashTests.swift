import Foundation
import LinuxSys
import Testing

@testable import ShimCore

/// Crash reasons through the runtime seam: a sandbox that dies unasked is reported (log,
/// metric, last crash) from its panic log, after its exit is published; a plain exit of the
/// pod's init, or the shim's own SIGKILL, is no crash; the panic log is read bounded and goes
/// with the sandbox.
@Suite(.timeLimit(.minutes(1))) struct PodShimCrashTests {
    typealias Pod = PodShimTests.Pod

    static func running(_ pod: Pod) async throws {
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
    }

    static let sentryPanic = """
        panic: running on goroutine 20044225970656 (task goroutine for kernel.Task 0xc000a4e000 is 0)

        goroutine 20044225970656 [running]:
        gvisor.dev/gvisor/pkg/sentry/kernel.(*Task).assertTaskGoroutine(...)

        """

    @Test func aSentryPanicIsReportedWithItsLineAfterTheExitIsPublished() async throws {
        let pod = try Pod()
        try await Self.running(pod)
        let panicLog = try #require(pod.runtime.panicLog("pod"))
        #expect(panicLog.hasPrefix(pod.dir.file("scratch") + "/"), "the panic log lives in the shim's scratch directory")
        pod.runtime.sandboxCrashes("pod", panic: Self.sentryPanic, status: .exited(2))
        try await pod.published("/tasks/exit")
        // Decided in the turn that published the exit: there by the time the exit is seen.
        let crash = try #require(await pod.shim.lastCrash)
        #expect(crash.reason == .panic)
        #expect(crash.detail == "panic: running on goroutine 20044225970656 (task goroutine for kernel.Task 0xc000a4e000 is 0)")
        #expect(crash.status == "exited with status 2" && crash.process == "runsc-sandbox" && crash.sandbox == "pod")
        #expect(try await pod.shim.state(id: "pod", execID: "").exitStatus == 2)
        let text = await pod.shim.metrics.text()
        #expect(text.contains("warden_sandbox_crashes_total{") && text.contains(#"reason="panic"} 1"#), "\(text)")
        #expect(text.contains("warden_last_sandbox_crash_timestamp_seconds"))
        _ = try await pod.shim.delete(id: "pod", execID: "")
        #expect(!FileManager.default.fileExists(atPath: panicLog), "the panic log goes with the sandbox")
    }

    @Test func aPlainExitOfThePodsInitIsNoCrash() async throws {
        let pod = try Pod()
        try await Self.running(pod)
        pod.runtime.sandboxCrashes("pod", panic: nil, status: .exited(1))
        try await pod.published("/tasks/exit")
        #expect(await pod.shim.lastCrash == nil)
        #expect(!(await pod.shim.metrics.text()).contains("warden_sandbox_crashes_total{"))
    }

    @Test func aSignalTheShimDidNotSendIsACrashAndItsOwnSigkillIsNot() async throws {
        let unasked = try Pod()
        try await Self.running(unasked)
        unasked.runtime.sandboxCrashes("pod", panic: nil, status: .signaled(9))
        try await unasked.published("/tasks/exit")
        let crash = try #require(await unasked.shim.lastCrash)
        #expect(crash.reason == .signal && crash.status == "killed by signal 9", "\(crash)")

        let killed = try Pod()
        try await Self.running(killed)
        try await killed.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await killed.published("/tasks/exit")
        #expect(killed.supervision.signalsSent.contains { $0.signal == 9 }, "the ladder's SIGKILL ended it")
        #expect(await killed.shim.lastCrash == nil)
    }

    /// runsc 2024's /proc umounter writes this to the panic log when the sandbox is killed
    /// during its boot (critest's abandoned pods, removed at once, were reported crashed).
    static let umounterOnAKilledBoot = "unable to read from the sync descriptor: 0, error EOF\n"

    @Test func whatRunscsHelpersSayWhenTheShimKillsTheSandboxIsNoCrash() async throws {
        let killed = try Pod()
        try await Self.running(killed)
        let panicLog = try #require(killed.runtime.panicLog("pod"))
        try Self.umounterOnAKilledBoot.write(toFile: panicLog, atomically: false, encoding: .utf8)
        try await killed.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await killed.published("/tasks/exit")
        #expect(await killed.shim.lastCrash == nil)
        #expect(!(await killed.shim.metrics.text()).contains("warden_sandbox_crashes_total{"))

        func verdict(_ log: String, stopRequested: Bool) -> SandboxCrash.Reason? {
            SandboxCrash.ofSandbox(
                "pod", pid: 1, status: .signaled(9), stopRequested: stopRequested, oomKills: 0, panicLog: Array(log.utf8),
                panicLogPath: nil, at: 0)?.reason
        }
        // Unasked, the same line is the crash's detail; a real crash line counts either way.
        #expect(verdict(Self.umounterOnAKilledBoot, stopRequested: false) == .runtime)
        #expect(verdict(Self.sentryPanic, stopRequested: true) == .panic)
        #expect(verdict("fatal error: out of memory\n", stopRequested: true) == .fatalError)
    }

    @Test func theCrashLineIsFoundAndTheLogReadBounded() throws {
        #expect(SandboxCrash.crashLine(in: Array("SIGABRT: abort\nPC=0x47a921 m=0 sigcode=0\n".utf8))?.reason == .signal)
        #expect(SandboxCrash.crashLine(in: Array("fatal error: out of memory\n".utf8))?.reason == .fatalError)
        #expect(SandboxCrash.crashLine(in: Array("\n\n".utf8)) == nil)
        // A line the size of the whole read: clipped; what lies past the read limit is not read.
        let huge = String(repeating: "x", count: SandboxCrash.readLimit) + "\npanic: too late to be read\n"
        let found = try #require(SandboxCrash.crashLine(in: Array(huge.utf8)))
        #expect(found.reason == .runtime && found.line.count == SandboxCrash.detailLimit + 1)
    }
}
