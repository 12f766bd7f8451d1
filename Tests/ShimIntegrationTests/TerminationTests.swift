import Foundation
import Testing
import WardenTestSupport

/// The termination contract (design.md §3) through a private containerd and `ctr`, for every
/// fake-runsc fault and for real runsc with its sandbox SIGSTOPped. Small deadlines keep the
/// suite fast; each bound is measured against them. `ctr` itself takes up to ~0.3 s to start
/// and connect, so RPC bounds measured through it get `ctrOverhead` on top.
@Suite(.serialized)
struct TerminationTests {
    static let callTimeout: Duration = .seconds(1)
    static let stopDeadline: Duration = .seconds(3)
    static let deleteDeadline: Duration = .seconds(3)
    static let ctrOverhead: Duration = .milliseconds(500)
    static let deadlines = """
        runsc_call_timeout = "1s"
        kill_grace = "500ms"
        stop_deadline = "3s"
        delete_deadline = "3s"
        """

    enum Fault: String, CaseIterable, CustomStringConvertible, Sendable {
        case hangKill = "hang-kill", hangDelete = "hang-delete", hangWait = "hang-wait", hangState = "hang-state"
        case ignoreSigterm = "ignore-sigterm", orphanGofer = "orphan-gofer", slowStart = "slow-start"
        case realSandboxStopped = "real runsc, sandbox SIGSTOPped"
        var description: String { rawValue }
        /// Faults that must be in place before the container is created.
        var beforeCreate: Bool { self == .orphanGofer || self == .slowStart }
    }

    /// Kill returns within runsc_call_timeout, the exit is seen within stop_deadline, Delete
    /// within delete_deadline, and nothing is left.
    @Test(arguments: Fault.allCases)
    func aWedgedPodStillStopsInTime(_ fault: Fault) async throws {
        let runtime: RuntimeKind = fault == .realSandboxStopped ? .real : .fake
        guard ShimHarness.available(runtime) else { return }
        try await withTimeout(.seconds(90), "\(fault)") {
            let h = try await ShimHarness.start(runtime, deadlines: Self.deadlines)
            do {
                let faults = h.runscRoot + "/faults"
                try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
                if fault.beforeCreate { try "\(fault)\n".write(toFile: faults, atomically: true, encoding: .utf8) }
                // hang-wait only matters for a container that joined the sandbox: run a pod of two.
                let pod = fault == .hangWait
                _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + (pod ? Self.podAnnotations("sandbox") : []) + [ShimHarness.image, "victim", "sleep", "1000"])
                if pod {
                    _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + Self.podAnnotations("container") + [ShimHarness.image, "victim-app", "sleep", "1000"])
                    try await h.waitForTask("victim-app", status: "RUNNING")
                }
                try await h.waitForTask("victim", status: "RUNNING")
                switch fault {
                case .realSandboxStopped:
                    let pid = try #require(try await h.taskPid("victim"))
                    #expect(kill(pid, SIGSTOP) == 0)
                case .ignoreSigterm:
                    try "\(fault)\n".write(toFile: faults, atomically: true, encoding: .utf8)
                default:
                    if !fault.beforeCreate { try "\(fault)\n".write(toFile: faults, atomically: true, encoding: .utf8) }
                }
                if fault == .ignoreSigterm {
                    // (ignore-sigterm applies to processes the sandbox starts: restart the victim under it.)
                    _ = try await h.ctr(["task", "kill", "-s", "SIGKILL", "victim"])
                    try await h.waitForTask("victim", status: "STOPPED")
                    _ = try await h.ctr(["task", "rm", "victim"])
                    _ = try await h.ctr(["container", "rm", "victim"])
                    _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "victim", "sleep", "1000"])
                    try await h.waitForTask("victim", status: "RUNNING")
                    #expect(try await h.ctr(["task", "kill", "-s", "SIGTERM", "victim"]).status == 0)
                    try await Task.sleep(for: .seconds(1))
                    try await h.waitForTask("victim", status: "RUNNING", timeout: .seconds(1))
                }

                let sandboxPid = try #require(try await h.taskPid("victim"))
                let killStarted = ContinuousClock.now
                let killed = try await h.ctr(["task", "kill", "-s", "SIGKILL", "victim"])
                let killTook = ContinuousClock.now - killStarted
                #expect(killed.status == 0, "kill: \(killed.output)")
                #expect(killTook < Self.callTimeout + Self.ctrOverhead, "Kill took \(killTook)")
                try await h.waitForTask("victim", status: "STOPPED", timeout: Self.stopDeadline + .milliseconds(500))
                if pod { try await h.waitForTask("victim-app", status: "STOPPED", timeout: .milliseconds(500)) }
                let stoppedAfter = ContinuousClock.now - killStarted
                #expect(stoppedAfter < Self.stopDeadline + .milliseconds(500), "stopped after \(stoppedAfter)")
                // Reported stopped because it is: the sandbox process is gone (or a zombie being reaped).
                #expect(!processExists(sandboxPid) || isZombie(sandboxPid), "sandbox pid \(sandboxPid) still alive at STOPPED")

                if pod {
                    _ = try await h.ctr(["task", "rm", "victim-app"])
                    _ = try await h.ctr(["container", "rm", "victim-app"])
                }
                let deleteStarted = ContinuousClock.now
                let removed = try await h.ctr(["task", "rm", "victim"])
                let deleteTook = ContinuousClock.now - deleteStarted
                #expect(removed.status == 0 && removed.output.contains("137"), "task rm: \(removed.output)")
                #expect(deleteTook < Self.deleteDeadline + Self.ctrOverhead, "Delete took \(deleteTook)")
                #expect(try await h.ctr(["container", "rm", "victim"]).status == 0)
                try? FileManager.default.removeItem(atPath: faults)
                #expect(h.containerd.process.outputText.contains("termination sandbox=victim"), "one termination record is logged")
                try await h.finish()
            } catch {
                await h.abandon()
                throw error
            }
        }
    }

    static func podAnnotations(_ type: String) -> [String] {
        ["--annotation", "io.kubernetes.cri.container-type=\(type)", "--annotation", "io.kubernetes.cri.sandbox-id=victim"]
    }

    /// A failed create and a failed start leave nothing that `ctr` cannot remove, and nothing behind.
    @Test(arguments: ["crash-on-create", "fail-start"])
    func aFailedCreateOrStartIsCleanedUp(_ fault: String) async throws {
        guard ShimHarness.available(.fake) else { return }
        try await withTimeout(.seconds(60), fault) {
            let h = try await ShimHarness.start(.fake, deadlines: Self.deadlines)
            do {
                try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
                try "\(fault)\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
                let run = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "broken", "sleep", "1000"])
                #expect(run.status != 0)
                #expect(run.output.contains(fault), "the runsc error reaches ctr: \(run.output)")
                try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
                if fault == "fail-start" {
                    // ctr leaves the task behind; it is `failed`, shown STOPPED, and kill and rm succeed.
                    try await h.waitForTask("broken", status: "STOPPED")
                    let killed = try await h.ctr(["task", "kill", "-s", "SIGKILL", "broken"])
                    #expect(killed.status == 0, "task kill: \(killed.output)")
                    let removed = try await h.ctr(["task", "rm", "broken"])
                    #expect(removed.status == 0, "task rm: \(removed.output)")
                }
                #expect(try await h.ctr(["container", "rm", "broken"]).status == 0)
                try await h.finish()
            } catch {
                await h.abandon()
                throw error
            }
        }
    }
}
