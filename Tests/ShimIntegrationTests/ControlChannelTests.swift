import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// Wait, kill, ps and stats over the sandbox's control server (fake-runsc serves one as runsc
/// 2024 does), and the CLI for a pod whose server is not there or stops answering as urpc
/// does; a hung server holds the ladder's deadlines. Driven over ttrpc with no containerd
/// (SubcontainerReleaseTests' pod: a sandbox task "<pod>" and a container "app" in it).
@Suite(.serialized)
struct ControlChannelTests {
    static let task = SubcontainerReleaseTests.task

    /// The metrics' `warden_runtime_path` of the pod's sandbox, once it says `path`.
    static func waitForPath(_ pod: SandboxAPITests.Pod, _ path: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let text = metricsText(pod)
            if text.split(separator: "\n").contains(where: { $0.hasPrefix("warden_runtime_path{") && $0.contains("path=\"\(path)\"") && ($0.hasSuffix(" 1") || $0.hasSuffix(" 1.0")) }) {
                return
            }
            if ContinuousClock.now > deadline {
                Issue.record("warden_runtime_path never said \(path) within 10 s; metrics:\n\(text)\nfault log:\n\(faultLog(pod))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func metricsText(_ pod: SandboxAPITests.Pod) -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: pod.dir.file("metrics"))) ?? []
        return files.filter { $0.hasSuffix(".prom") }
            .compactMap { try? String(contentsOfFile: pod.dir.file("metrics/\($0)"), encoding: .utf8) }.joined()
    }

    static func faultLog(_ pod: SandboxAPITests.Pod) -> String {
        (try? String(contentsOfFile: pod.dir.file("runsc/fault-log"), encoding: .utf8)) ?? ""
    }

    static func setFaults(_ pod: SandboxAPITests.Pod, _ faults: String) throws {
        try (faults + "\n").write(toFile: pod.dir.file("runsc/faults"), atomically: true, encoding: .utf8)
    }

    /// SIGKILL of "app" and its Wait: the exit status it reports.
    static func killApp(_ pod: SandboxAPITests.Pod) async throws -> UInt32 {
        var kill = Containerd_Task_V2_KillRequest()
        kill.id = "app"
        kill.signal = 9
        let _: Google_Protobuf_Empty = try await pod.call("Kill", kill, service: task)
        var wait = Containerd_Task_V2_WaitRequest()
        wait.id = "app"
        let waited: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", wait, service: task)
        return waited.exitStatus
    }

    /// The pod deleted and shut down; then nothing of it runs.
    static func finish(_ pod: SandboxAPITests.Pod, _ id: String, sandboxKilled: Bool = false) async throws {
        if sandboxKilled {
            for container in ["app", id] {
                var delete = Containerd_Task_V2_DeleteRequest()
                delete.id = container
                let _: Containerd_Task_V2_DeleteResponse = try await pod.call("Delete", delete, service: task)
                guard container == "app" else { continue }
                var shutdown = Containerd_Task_V2_ShutdownRequest()
                shutdown.id = container
                let _: Google_Protobuf_Empty = try await pod.call("Shutdown", shutdown, service: task)
            }
        } else {
            _ = try await SubcontainerReleaseTests.deleteSandbox(of: pod, id, release: true)
        }
        var shutdown = Containerd_Task_V2_ShutdownRequest()
        shutdown.id = id
        let _: Google_Protobuf_Empty = try await pod.call("Shutdown", shutdown, service: task)
        let deadline = ContinuousClock.now + .seconds(5)
        while !livingProcesses(mentioning: pod.dir.path).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(livingProcesses(mentioning: pod.dir.path).isEmpty, "left running: \(livingProcesses(mentioning: pod.dir.path))")
        #expect(SandboxAPITests.filesLeft(under: pod.dir.file("runsc")).isEmpty, "left: \(SandboxAPITests.filesLeft(under: pod.dir.file("runsc")))")
    }

    @Test(.timeLimit(.minutes(1))) func aContainersWaitAndKillGoOverTheChannelWithNoRunscProcess() async throws {
        guard ShimHarness.available(.fake) else { return }
        // An empty faults file: fake-runsc then logs each CLI verb and control call.
        let pod = try await SubcontainerReleaseTests.podWithContainer("cc1", faults: " ")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "a container's life over the channel") {
            try await Self.waitForPath(pod, "control")
            try await Task.sleep(for: .milliseconds(200))
            // What the shim keeps running for the pod: no `runsc wait` for "app".
            let waits = livingProcesses(mentioning: pod.dir.path).filter { $0.contains(" wait ") }
            #expect(waits.isEmpty, "runsc wait processes: \(waits)")
            var stats = Containerd_Task_V2_StatsRequest()
            stats.id = "app"
            let _: Containerd_Task_V2_StatsResponse = try await pod.call("Stats", stats, service: Self.task)
            var pids = Containerd_Task_V2_PidsRequest()
            pids.id = "app"
            let listed: Containerd_Task_V2_PidsResponse = try await pod.call("Pids", pids, service: Self.task)
            #expect(!listed.processes.isEmpty)
            #expect(try await Self.killApp(pod) == 137)
            let log = Self.faultLog(pod)
            for call in ["Processes", "Wait", "Signal", "Event"] {
                #expect(log.contains("control containerManager.\(call)"), "no \(call) over the channel: \(log)")
            }
            for verb in ["wait", "kill", "ps", "events"] {
                #expect(!log.contains("cli \(verb)\n"), "runsc \(verb) was run: \(log)")
            }
            try await Self.finish(pod, "cc1")
        }
    }

    @Test(.timeLimit(.minutes(1))) func aSandboxWithNoControlSocketUsesTheCLI() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SubcontainerReleaseTests.podWithContainer("cc2", faults: "no-control")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "a pod on the CLI") {
            try await Self.waitForPath(pod, "cli")
            #expect(try await Self.killApp(pod) == 137)
            let log = Self.faultLog(pod)
            #expect(log.contains("cli wait") && log.contains("cli kill"), "fault log: \(log)")
            #expect(!log.contains("control containerManager"), "fault log: \(log)")
            try await Self.finish(pod, "cc2")
        }
    }

    /// A server that answers the probe, then closes, talks garbage or answers with the wrong
    /// type: that call is made again through the CLI, and so is every one after it.
    @Test(.timeLimit(.minutes(1)), arguments: ["control-close", "control-garbage", "control-wrong"])
    func aServerThatStopsAnsweringAsURPCSendsThePodToTheCLI(fault: String) async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SubcontainerReleaseTests.podWithContainer("cc3", faults: " ")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "falling back after \(fault)") {
            try await Self.waitForPath(pod, "control")
            try Self.setFaults(pod, fault)
            #expect(try await Self.killApp(pod) == 137)
            try await Self.waitForPath(pod, "cli")
            #expect(Self.faultLog(pod).contains("cli kill"), "the kill was not made again through the CLI: \(Self.faultLog(pod))")
            try Self.setFaults(pod, " ")
            try await Self.finish(pod, "cc3")
        }
    }

    /// A control server that stops answering is a wedged sandbox: the sandbox's SIGKILL is
    /// answered within runsc_call_timeout (1 s here) and every exit is published within
    /// stop_deadline (3 s), as with a hung `runsc kill`.
    @Test(.timeLimit(.minutes(1))) func aHungControlServerHoldsTheLaddersDeadlines() async throws {
        guard ShimHarness.available(.fake) else { return }
        let pod = try await SubcontainerReleaseTests.podWithContainer("cc4", faults: " ")
        defer { SandboxAPITests.abandon(pod) }
        try await withTimeout(.seconds(30), "the ladder under a hung control server") {
            try await Self.waitForPath(pod, "control")
            try Self.setFaults(pod, "control-hang")
            let began = ContinuousClock.now
            var kill = Containerd_Task_V2_KillRequest()
            kill.id = "cc4"
            kill.signal = 9
            kill.all = true
            let _: Google_Protobuf_Empty = try await pod.call("Kill", kill, service: Self.task)
            #expect(ContinuousClock.now - began < TestBounds.cutShort(.seconds(1)), "Kill answered after \(ContinuousClock.now - began)")
            for id in ["app", "cc4"] {
                var wait = Containerd_Task_V2_WaitRequest()
                wait.id = id
                let _: Containerd_Task_V2_WaitResponse = try await pod.call("Wait", wait, service: Self.task)
            }
            let took = ContinuousClock.now - began
            #expect(took < TestBounds.cutShort(.seconds(SandboxAPITests.stopDeadline)), "exits published after \(took)")
            try Self.setFaults(pod, " ")
            try await Self.finish(pod, "cc4", sandboxKilled: true)
        }
    }

    /// Real runsc 2024: the probe answers, a joined container's exit comes from its Wait on
    /// the control server with no `runsc wait` process alive, and its stats are the sentry's.
    /// (runsc 2022 records no control socket: its pods use the CLI, and the log says so.)
    @Test(.timeLimit(.minutes(2))) func realRunscsControlServerServesTheContainersOfAPod() async throws {
        guard ShimHarness.available(.real) else { return }
        try await ShimHarness.run(.real, limit: .seconds(90), "real control channel") { h in
            let sandbox = TerminationTests.podAnnotations("sandbox", pod: "cp")
            let joined = TerminationTests.podAnnotations("container", pod: "cp")
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + sandbox + [ShimHarness.image, "cp", "sleep", "1000"]).status == 0)
            try await h.waitForTask("cp", status: "RUNNING")
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + joined + [ShimHarness.image, "cp-app", "sleep", "1000"]).status == 0)
            try await h.waitForTask("cp-app", status: "RUNNING")
            try await Task.sleep(for: .milliseconds(200))  // the probe's log line, after Start
            let log = h.containerd.process.outputText
            let hasSocket = FileManager.default.fileExists(atPath: h.runscRoot + "/\(h.namespace)/cp/runsc-cp.sock")
            let runscVersion = ProcessInfo.processInfo.environment["WARDEN_RUNSC_VERSION"] ?? ""
            #expect(hasSocket || !runscVersion.hasPrefix("0.0~2024"), "runsc \(runscVersion) keeps no control socket file")
            if hasSocket {
                #expect(log.contains("sandbox cp: wait, kill, ps and stats over its control server"), "shim log: \(log.suffix(3000))")
                try await Task.sleep(for: .milliseconds(300))
                let waits = livingProcesses(mentioning: h.runscRoot).filter { $0.contains(" wait ") }
                #expect(waits.isEmpty, "runsc wait processes: \(waits)")
            } else {
                #expect(log.contains("sandbox cp: runsc's CLI for every call: runsc records no control socket"), "shim log: \(log.suffix(3000))")
            }
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "cp-app"]).status == 0)
            try await h.waitForTask("cp-app", status: "STOPPED", timeout: .seconds(5))
            let removed = try await h.ctr(["task", "rm", "cp-app"])
            #expect(removed.output.contains("137"), "task rm: \(removed.output)")
            #expect(try await h.ctr(["container", "rm", "cp-app"]).status == 0)
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "cp"]).status == 0)
            try await h.waitForTask("cp", status: "STOPPED", timeout: .seconds(5))
            _ = try await h.ctr(["task", "rm", "cp"])
            #expect(try await h.ctr(["container", "rm", "cp"]).status == 0)
        }
    }
}
