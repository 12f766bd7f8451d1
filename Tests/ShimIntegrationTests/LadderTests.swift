import Foundation
import Synchronization
import LinuxSys
import Testing
import WardenTestSupport

/// Escalation-ladder paths that need a hostile machine to reach (issue 13): a process in the
/// sandbox's cgroup that is not in the shim's tree, a sandbox SIGKILL cannot end (held by a
/// frozen v1 freezer cgroup), and a spec whose network namespace is not one.
@Suite(.serialized) struct LadderTests {
    static let deadlines = TerminationTests.deadlines
    static let stopDeadline = TerminationTests.stopDeadline

    /// A `sleep` the test starts (its parent is the test, not the shim) and moves into the
    /// sandbox's cgroup is SIGKILLed by the ladder itself: dead when the task shows STOPPED,
    /// before Delete's cgroup cleanup runs. `controller` picks the v1 hierarchy (freezer: the
    /// frozen-then-killed path; pids: member by member).
    @Test(arguments: [(RuntimeKind.fake, "freezer"), (RuntimeKind.fake, "pids"), (RuntimeKind.real, "pids")])
    func aProcessMovedIntoTheSandboxCgroupIsKilledByTheLadder(_ runtime: RuntimeKind, _ controller: String) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(60), "cgroup kill, \(runtime) runsc, \(controller)", deadlines: Self.deadlines) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("c1", status: "RUNNING")
            let directory = "/sys/fs/cgroup/\(controller)/\(h.namespace)/c1"
            #expect(FileManager.default.fileExists(atPath: directory), "runsc made \(directory)")
            let null = try FileDescriptor.open("/dev/null")
            let stranger = try Spawn.spawn(
                path: "/bin/sleep", arguments: ["1000"], environment: [], stdin: null, stdout: null, stderr: null,
                newSession: true)
            FileDescriptor.close(null)
            // If the ladder misses it, the test's cleanup must not (and, once reaped here, must
            // not signal its pid again).
            let unreaped = Mutex(true)
            h.onAbandon {
                guard unreaped.withLock({ $0 }) else { return }
                kill(stranger, SIGKILL)
                _ = ChildProcesses.waitBlocking(stranger)
            }
            try Cgroups.addProcess(stranger, to: directory)
            #expect(Cgroups.processes(in: directory)?.contains(stranger) == true)

            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED", timeout: Self.stopDeadline + .milliseconds(500))
            let status = try await withTimeout(.seconds(1), "the moved process's death") {
                while true {
                    if let status = ChildProcesses.reap(stranger) {
                        unreaped.withLock { $0 = false }
                        return status
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            #expect(status == .signaled(9))
            let log = h.containerd.process.outputText
            let named = try Regex(#"cgroup=\d+ms\(\d+ processes by pidfd \([^)]*pid \#(stranger)[,)]"#)
            #expect(log.contains(named), "the cgroup step names it")
            #expect(!log.contains("cgroup_killed=0"), "counted as a cgroup kill")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    /// A sandbox held in a frozen freezer cgroup (not its own: the test's) does not die on
    /// SIGKILL. The reap waits only until stop_deadline; then the exit is published as 137,
    /// the record says the sandbox survived, and the reap timeout is counted. Thawed, the
    /// pending SIGKILL ends it and Delete leaves nothing.
    @Test func aSandboxThatSurvivesSigkillIsReportedStoppedAtTheDeadline() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "reap timeout", deadlines: Self.deadlines) { h in
            let hold = "/sys/fs/cgroup/freezer/\(h.namespace)-hold"
            h.onAbandon {
                try? Cgroups.setFrozen(hold, false)
                try? await Self.removeCgroup(hold)
            }
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("c1", status: "RUNNING")
            let sandboxPid = try #require(try await h.taskPid("c1"))
            try FileManager.default.createDirectory(atPath: hold, withIntermediateDirectories: false)
            try Cgroups.addProcess(sandboxPid, to: hold)
            try Cgroups.setFrozen(hold, true)

            let killed = ContinuousClock.now
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED", timeout: Self.stopDeadline + .seconds(1))
            let took = ContinuousClock.now - killed
            #expect(took < Self.stopDeadline + .seconds(1), "STOPPED after \(took)")
            #expect(processExists(sandboxPid) && !isZombie(sandboxPid), "the frozen sandbox really survived")
            let log = h.containerd.process.outputText
            #expect(log.contains("survived SIGKILL; exits published as 137"), "the record names the survivor")
            #expect(log.contains("reap_timed_out=1"), "the reap timeout is counted")

            try Cgroups.setFrozen(hold, false)
            try await withTimeout(.seconds(5), "the thawed sandbox's death") {
                while processExists(sandboxPid) && !isZombie(sandboxPid) { try await Task.sleep(for: .milliseconds(20)) }
            }
            let removed = try await h.ctr(["task", "rm", "c1"])
            #expect(removed.status == 0 && removed.output.contains("137"), "task rm: \(removed.output)")
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
            try await Self.removeCgroup(hold)
        }
    }

    /// A spec whose network namespace is a plain file: the release step fails with an error
    /// naming the file, is counted, and the ladder goes on; the pod stops in its deadline
    /// and the file is untouched.
    @Test func aNetworkNamespaceThatIsNotOneFailsItsStepAndThePodStillStops() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "netns release failure", deadlines: Self.deadlines) { h in
            let notANamespace = h.containerd.dir.file("not-a-netns")
            try "plain file\n".write(toFile: notANamespace, atomically: true, encoding: .utf8)
            let run = try await h.ctr(
                ["run", "-d", "--with-ns", "network:\(notANamespace)"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"])
            #expect(run.status == 0, "run: \(run.output)")
            try await h.waitForTask("c1", status: "RUNNING")
            let killed = ContinuousClock.now
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED", timeout: Self.stopDeadline + .milliseconds(500))
            #expect(ContinuousClock.now - killed < Self.stopDeadline + .milliseconds(500))
            let log = h.containerd.process.outputText
            #expect(log.contains("netns=") && log.contains("failed: network namespace \(notANamespace)"), "the step names the file")
            #expect(log.contains("netns_failed=1"), "the failure is counted")
            #expect(try String(contentsOfFile: notANamespace, encoding: .utf8) == "plain file\n")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    /// rmdir of a cgroup whose last process has just died can fail with EBUSY for a moment.
    static func removeCgroup(_ directory: String) async throws {
        for _ in 0..<100 {
            if (try? Cgroups.remove(directory)) != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        try Cgroups.remove(directory)
    }
}

/// A pod whose spec asks for an oomScoreAdj below the shim's own, under a containerd (and so
/// a shim) without CAP_SYS_RESOURCE: runsc start would fail writing it (fake-runsc does as
/// runsc does); the shim clamps the spec to its own score, logs it, and the pod runs.
@Suite(.serialized) struct OOMScoreAdjTests {
    @Test func aScoreTheShimMayNotSetIsClampedAndThePodRuns() async throws {
        guard ShimHarness.available(.fake), FileManager.default.fileExists(atPath: "/usr/bin/setpriv") else {
            if ProcessInfo.processInfo.environment["WARDEN_INTEROP"] == "1" { Issue.record("setpriv missing") }
            return
        }
        try await ShimHarness.run(
            .fake, limit: .seconds(60), "oomScoreAdj clamp", deadlines: LadderTests.deadlines,
            launcher: ["/usr/bin/setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--"]
        ) { h in
            let own = Int(try String(contentsOfFile: "/proc/self/oom_score_adj", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            let requested = own - 10
            let defaults = try await runCommand(ContainerdUnderTest.ctr, ["oci", "spec"])
            var spec = try #require(
                try JSONSerialization.jsonObject(with: Data(defaults.output.utf8)) as? [String: Any])
            var process = spec["process"] as? [String: Any] ?? [:]
            process["args"] = ["sleep", "1000"]
            process["env"] = ["PATH=/bin:/usr/bin"]
            process["oomScoreAdj"] = requested
            spec["process"] = process
            var linux = spec["linux"] as? [String: Any] ?? [:]
            linux["cgroupsPath"] = "/\(h.namespace)/c1"
            spec["linux"] = linux
            // An empty root (fake-runsc runs the command on the host): with --config, ctr takes no image.
            let root = h.containerd.dir.file("empty-root")
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            spec["root"] = ["path": root]
            let specPath = h.containerd.dir.file("spec.json")
            try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specPath))

            let run = try await h.ctr(["run", "-d", "--config", specPath] + h.runtimeFlags + ["c1"])
            #expect(run.status == 0, "run: \(run.output)")
            try await h.waitForTask("c1", status: "RUNNING")
            let sandboxPid = try #require(try await h.taskPid("c1"))
            let applied = try String(contentsOfFile: "/proc/\(sandboxPid)/oom_score_adj", encoding: .utf8)
            #expect(applied.trimmingCharacters(in: .whitespacesAndNewlines) == "\(own)", "the sandbox got the clamped score")
            #expect(
                h.containerd.process.outputText.contains("oomScoreAdj \(requested) clamped to \(own)"),
                "the clamp is logged")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }
}

/// Pids while runsc ps hangs (a wedged sandbox): answered in runsc_call_timeout with the pids
/// the shim knows, never empty. containerd 1.7 takes a running task with no pids, after a
/// restart, for a leaked shim and deletes it without a kill (tests/cri's restart cases).
@Suite(.serialized) struct WedgedPidsTests {
    @Test func pidsOfAWedgedSandboxAreTheOnesTheShimKnows() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "pids with runsc ps hung", deadlines: LadderTests.deadlines) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("c1", status: "RUNNING")
            let pid = try #require(try await h.taskPid("c1"))
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "hang-ps\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            let began = ContinuousClock.now
            let listed = try await h.ctr(["task", "ps", "c1"], timeout: .seconds(10))
            #expect(ContinuousClock.now - began < TerminationTests.callTimeout + TerminationTests.ctrOverhead + .milliseconds(500))
            #expect(listed.status == 0, "ctr task ps: \(listed.output)")
            #expect(listed.output.split(separator: "\n").dropFirst().contains { $0.hasPrefix("\(pid)") }, "\(listed.output)")
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }
}
