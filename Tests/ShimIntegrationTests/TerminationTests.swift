import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
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

    /// Which way wait, kill, ps and stats go: the sandbox's control server (fake-runsc and
    /// runsc 2024 serve one; a wedged fake's hang-kill hangs its Signal as it hangs `runsc
    /// kill`), or runsc's CLI (`control_channel = "off"`). Each fault is held to both.
    enum RuntimePath: String, CaseIterable, CustomStringConvertible, Sendable {
        case control = "auto", cli = "off"
        var description: String { self == .control ? "control channel" : "runsc CLI" }
    }

    /// Kill returns within runsc_call_timeout, the exit is seen within stop_deadline, Delete
    /// within delete_deadline, and nothing is left.
    @Test(arguments: Fault.allCases, RuntimePath.allCases)
    func aWedgedPodStillStopsInTime(_ fault: Fault, _ path: RuntimePath) async throws {
        let runtime: RuntimeKind = fault == .realSandboxStopped ? .real : .fake
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(90), "\(fault), \(path)", deadlines: Self.deadlines, controlChannel: path.rawValue) { h in
            let faults = h.runscRoot + "/faults"
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            if fault.beforeCreate { try "\(fault)\n".write(toFile: faults, atomically: true, encoding: .utf8) }
            // hang-wait only matters for a container that joined the sandbox: run a pod of two.
            // hang-delete too: Delete of a reaped pod sandbox removes runsc's state without
            // calling runsc, so the hung `runsc delete` is the app container's.
            let pod = fault == .hangWait || fault == .hangDelete
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
                let appDeleteStarted = ContinuousClock.now
                let appRemoved = try await h.ctr(["task", "rm", "victim-app"])
                let appDeleteTook = ContinuousClock.now - appDeleteStarted
                #expect(appRemoved.status == 0, "task rm victim-app: \(appRemoved.output)")
                #expect(
                    appDeleteTook < Self.deleteDeadline + Self.ctrOverhead,
                    "Delete of victim-app took \(appDeleteTook); the shim said: \(Self.logLines(h, mentioning: "victim-app"))")
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
        }
    }

    /// A sandbox whose container exits on its own takes its gofer with it: one that stays
    /// (`orphan-gofer`) is killed after kill_grace, before anyone deletes the task.
    @Test func aLingeringGoferIsKilledAfterTheSandboxExits() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "lingering gofer", deadlines: Self.deadlines) { h in
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "orphan-gofer\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "brief", "sh", "-c", "sleep 0.2"])
            try await h.waitForTask("brief", status: "STOPPED")
            func gofers() -> [String] { livingProcesses(mentioning: h.runscRoot).filter { $0.contains("gofer-main") } }
            let deadline = ContinuousClock.now + .milliseconds(500) + .seconds(1)  // kill_grace + slack
            while !gofers().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(gofers().isEmpty, "gofer outlived its sandbox: \(gofers())")
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            #expect(try await h.ctr(["task", "rm", "brief"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "brief"]).status == 0)
        }
    }

    /// The containerd log's lines (the shim's included) naming `word`, for a failure's message.
    static func logLines(_ h: ShimHarness, mentioning word: String) -> String {
        h.containerd.process.outputText.split(separator: "\n").filter { $0.contains(word) }.suffix(30).joined(separator: "\n")
    }

    static func podAnnotations(_ type: String, pod: String = "victim") -> [String] {
        ["--annotation", "io.kubernetes.cri.container-type=\(type)", "--annotation", "io.kubernetes.cri.sandbox-id=\(pod)"]
    }

    /// An exec whose `runsc exec` fails ends `ctr task exec` with the error at once (its stdio
    /// is closed; containerd's client waits for the streams to end before reporting it, and
    /// hung there for good), the container runs on, and the exec is deleted.
    @Test func aFailedExecStartReturnsAtOnceAndTheContainerRunsOn() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "failed exec start", deadlines: Self.deadlines) { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "host", "sleep", "1000"])
            try await h.waitForTask("host", status: "RUNNING")
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "fail-exec\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            let started = ContinuousClock.now
            let failed = try await h.ctr(["task", "exec", "--exec-id", "broken", "host", "echo", "hi"], timeout: .seconds(20))
            let took = ContinuousClock.now - started
            #expect(failed.status != 0, "the failed exec is reported: \(failed.output)")
            #expect(took < .seconds(3), "ctr task exec returned after \(took)")
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            try await h.waitForTask("host", status: "RUNNING", timeout: .milliseconds(500))
            let works = try await h.ctr(["task", "exec", "--exec-id", "works", "host", "echo", "fine"])
            #expect(works.status == 0 && works.output.contains("fine"), "a later exec: \(works.output)")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "host"]).status == 0)
            try await h.waitForTask("host", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "host"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "host"]).status == 0)
        }
    }

    /// A failed create and a failed start leave nothing that `ctr` cannot remove, and nothing behind.
    @Test(arguments: ["crash-on-create", "fail-start"])
    func aFailedCreateOrStartIsCleanedUp(_ fault: String) async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), fault, deadlines: Self.deadlines) { h in
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
                // rm -f waits for the exit (Wait) before deleting: a failed task has exited.
                let removed = try await h.ctr(["task", "rm", "-f", "broken"], timeout: .seconds(10))
                #expect(removed.status == 0, "task rm: \(removed.output)")
            }
            #expect(try await h.ctr(["container", "rm", "broken"]).status == 0)
        }
    }
}

/// The shim SIGKILLed while its pod runs: containerd runs `containerd-shim-warden-v2 delete`,
/// which must leave nothing (the sandbox and gofer were the dead shim's children).
@Suite(.serialized)
struct DeadShimTests {
    /// With `hang-delete`, runsc cannot help: only the processes the shim recorded in the
    /// bundle (pid and start time) lead `delete` to them.
    @Test(arguments: [(RuntimeKind.real, ""), (.fake, ""), (.fake, "hang-delete")])
    func containerdsCleanupAfterAKilledShimLeavesNothing(_ runtime: RuntimeKind, _ fault: String) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(90), "dead shim", deadlines: TerminationTests.deadlines) { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "orphaned", "sleep", "1000"])
            try await h.waitForTask("orphaned", status: "RUNNING")
            let sandboxPid = try #require(try await h.taskPid("orphaned"))
            let shims = h.shimProcesses()
            #expect(shims.count == 1, "\(shims)")
            let shimPid = try #require(shims.first.flatMap { Int32($0.split(separator: ":")[0]) })
            if !fault.isEmpty { try "\(fault)\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8) }
            #expect(kill(shimPid, SIGKILL) == 0)
            let killed = ContinuousClock.now
            // containerd notices the connection drop and runs `delete`; the task goes away.
            let deadline = killed + TerminationTests.deleteDeadline + .seconds(2)
            while try await h.ctr(["task", "ls"]).output.contains("orphaned"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(!(try await h.ctr(["task", "ls"]).output.contains("orphaned")), "containerd dropped the task")
            while processExists(sandboxPid) && !isZombie(sandboxPid) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(!processExists(sandboxPid) || isZombie(sandboxPid), "the sandbox died with its pod")
            #expect(try await h.ctr(["container", "rm", "orphaned"]).status == 0)
            try? FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
        }
    }
}

/// runsc removes a container's cgroup at `runsc delete`, except when it cannot reach the
/// sandbox (fake-runsc's `leave-cgroup`): Delete removes what it left, in every hierarchy.
/// (The dead-shim path is DeadShimTests' `hang-delete` case: its audit counts cgroups too.)
@Suite(.serialized)
struct CgroupCleanupTests {
    @Test func deleteRemovesTheCgroupRunscLeft() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "cgroup cleanup", deadlines: TerminationTests.deadlines) { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "grouped", "sleep", "1000"])
            try await h.waitForTask("grouped", status: "RUNNING")
            #expect(!h.leftCgroups().isEmpty, "fake-runsc made the container's cgroup")
            try "leave-cgroup\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "grouped"]).status == 0)
            try await h.waitForTask("grouped", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "grouped"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "grouped"]).status == 0)
            #expect(h.leftCgroups().isEmpty, "cgroups left after Delete: \(h.leftCgroups())")
            #expect(h.containerd.process.outputText.contains("cgroup /\(h.namespace)/grouped of grouped left by runsc: removed"))
            try? FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
        }
    }
}

/// Delete of a pod sandbox whose termination ladder is still finishing (the sandbox dead, its
/// exit published, the cgroup and reap steps still to come) joins the ladder: it answers after
/// the ladder's record, and nothing is left. The debug build's `delay-ladder-tail` hook holds
/// the ladder before its reap step.
@Suite(.serialized)
struct DeleteJoinsLadderTests {
    @Test func deleteOfASandboxMidLadderWaitsForTheLadder() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "delete mid-ladder", deadlines: TerminationTests.deadlines) { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "held", "sleep", "1000"])
            try await h.waitForTask("held", status: "RUNNING")
            try "hang-kill\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            try "held 1500\n".write(toFile: h.runscRoot + "/delay-ladder-tail", atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "held"]).status == 0)
            try await h.waitForTask("held", status: "STOPPED", timeout: TerminationTests.stopDeadline + .milliseconds(500))
            let began = ContinuousClock.now
            let removed = try await h.ctr(["task", "rm", "held"])
            let took = ContinuousClock.now - began
            #expect(removed.status == 0, "task rm: \(removed.output)")
            try? FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            try? FileManager.default.removeItem(atPath: h.runscRoot + "/delay-ladder-tail")
            let log = h.containerd.process.outputText
            let record = try #require(log.range(of: "termination sandbox=held"), "the ladder's record")
            let deleted = try #require(log.range(of: "deleted held in"), "Delete's line")
            #expect(record.lowerBound < deleted.lowerBound, "Delete answered before the ladder ended")
            #expect(took >= .milliseconds(500), "Delete did not wait for the held ladder: \(took)")
            #expect(try await h.ctr(["container", "rm", "held"]).status == 0)
        }
    }
}

/// 500 concurrent Kill and State calls while `runsc kill` hangs: identical kills share one
/// runsc call, State never waits on runsc, every call returns within its bound, and the shim's
/// threads, memory and runsc processes stay bounded.
@Suite(.serialized)
struct KillStormTests {
    static func status(_ pid: Int32, _ field: String) -> Int {
        let text = procText("/proc/\(pid)/status") ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
    }

    @Test func fiveHundredKillsAndStatesAgainstAHungRunscKill() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(120), "kill storm", deadlines: TerminationTests.deadlines) { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "storm", "sleep", "1000"])
            try await h.waitForTask("storm", status: "RUNNING")
            let shimPid = try #require(h.shimProcesses().first.flatMap { Int32($0.split(separator: ":")[0]) })
            let address = try String(
                contentsOfFile: h.containerd.dir.file("state/io.containerd.runtime.v2.task/\(h.namespace)/storm/address"),
                encoding: .utf8
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            try "hang-kill\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            let threadsBefore = Self.status(shimPid, "Threads")
            let rssBefore = Self.status(shimPid, "VmRSS")

            // Sampled while the storm runs: the shim's threads and its live runsc kill calls.
            let sampling = Task.detached { () -> (threads: Int, runscKills: Int) in
                var peak = (threads: 0, runscKills: 0)
                while !Task.isCancelled {
                    peak.threads = max(peak.threads, Self.status(shimPid, "Threads"))
                    let kills = livingProcesses(mentioning: h.runscRoot).filter { $0.contains(" kill ") }.count
                    peak.runscKills = max(peak.runscKills, kills)
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return peak
            }
            let socket = String(address.dropFirst("unix://".count))
            let clients = try (0..<10).map { _ in try TTRPCClient.connect(path: socket) }
            let metadata = [("containerd-namespace-ttrpc", h.namespace)]
            let bound = TerminationTests.callTimeout + .seconds(1)
            let started = ContinuousClock.now
            let results = await withTaskGroup(of: (String, Duration, String?).self) { group in
                for index in 0..<500 {
                    let client = clients[index % clients.count]
                    group.addTask {
                        let callStarted = ContinuousClock.now
                        let kind = ["state", "sigterm", "sigkill"][index % 3]
                        do {
                            if kind == "state" {
                                var request = Containerd_Task_V2_StateRequest()
                                request.id = "storm"
                                let _: Containerd_Task_V2_StateResponse = try await client.call(
                                    service: "containerd.task.v2.Task", method: "State", request: request, timeout: bound, metadata: metadata)
                            } else {
                                var request = Containerd_Task_V2_KillRequest()
                                request.id = "storm"
                                request.signal = kind == "sigterm" ? 15 : 9
                                let _: Google_Protobuf_Empty = try await client.call(
                                    service: "containerd.task.v2.Task", method: "Kill", request: request, timeout: bound, metadata: metadata)
                            }
                            return (kind, ContinuousClock.now - callStarted, nil)
                        } catch {
                            return (kind, ContinuousClock.now - callStarted, "\(error)")
                        }
                    }
                }
                var all: [(String, Duration, String?)] = []
                for await result in group { all.append(result) }
                return all
            }
            let stormTook = ContinuousClock.now - started
            sampling.cancel()
            let peak = await sampling.value
            clients.forEach { $0.close() }

            #expect(results.count == 500)
            for (kind, took, error) in results {
                #expect(took < bound, "\(kind) took \(took)")
                switch kind {
                case "state": #expect(error == nil, "State failed: \(error ?? "")")
                // The shared runsc kill timed out: deadline exceeded, not a hang.
                case "sigterm": #expect(error == nil || error!.contains("DeadlineExceeded") || error!.contains("already finished"), "SIGTERM: \(error ?? "")")
                // SIGKILL runs the ladder, which goes on past the hung runsc kill.
                default: #expect(error == nil || error!.contains("already finished"), "SIGKILL: \(error ?? "")")
                }
            }
            #expect(peak.runscKills <= 2, "runsc kill processes at once: \(peak.runscKills) (one per distinct signal)")
            // The ttrpc server has a reader and a writer thread per connection; none per request.
            #expect(peak.threads <= threadsBefore + 2 * clients.count + 4, "shim threads \(threadsBefore) → peak \(peak.threads)")
            let rssAfter = Self.status(shimPid, "VmRSS")
            #expect(rssAfter < rssBefore + 20_000, "shim RSS \(rssBefore) kB → \(rssAfter) kB")
            print("kill storm: 500 calls in \(stormTook); shim threads \(threadsBefore) → peak \(peak.threads); RSS \(rssBefore) → \(rssAfter) kB; runsc kill processes at once ≤ \(peak.runscKills)")

            try await h.waitForTask("storm", status: "STOPPED", timeout: TerminationTests.stopDeadline)
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            #expect(try await h.ctr(["task", "rm", "storm"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "storm"]).status == 0)
        }
    }
}
