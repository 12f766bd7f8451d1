import Foundation
import Testing
import WardenTestSupport

/// What an operator sees (issue 14): each shim's metrics file after a healthy run, a wedged
/// pod and a failed start, with exact counts, always parseable by prometheus_client's parser;
/// `warden status`; and `warden doctor`/`sweep` against the mess containerd's runc shim leaves
/// when a stuck pod's shim is killed by hand, beside a live Warden pod and a live runc-shim
/// pod that must not be touched.
@Suite(.serialized) struct OperatorTests {
    static let deadlines = TerminationTests.deadlines
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }
    static var warden: String { ShimHarness.buildDirectory + "/warden" }

    struct Sample: Decodable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    /// The shim's metrics file through tools/metrics/promcheck.py (fails if it does not parse).
    static func samples(_ h: ShimHarness, pod: String) async throws -> [Sample] {
        let file = h.metricsDirectory + "/\(h.namespace)_\(pod).prom"
        let checked = try await runCommand("/usr/bin/python3", [repository + "/tools/metrics/promcheck.py", file])
        #expect(checked.status == 0, "\(file) parses: \(checked.output)")
        return (try? JSONDecoder().decode([Sample].self, from: Data(checked.output.utf8))) ?? []
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
            .reduce(0) { $0 + $1.value }
    }

    /// Polls the metrics file until `ready` holds (writes are coalesced), at most 3 s.
    static func settled(_ h: ShimHarness, pod: String, _ ready: ([Sample]) -> Bool) async throws -> [Sample] {
        let deadline = ContinuousClock.now + .seconds(3)
        var samples = try await Self.samples(h, pod: pod)
        while !ready(samples) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            samples = try await Self.samples(h, pod: pod)
        }
        return samples
    }

    @Test func aHealthyRunIsCountedExactly() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "healthy run metrics", deadlines: Self.deadlines) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("c1", status: "RUNNING")
            #expect(try await h.ctr(["task", "exec", "--exec-id", "e1", "c1", "true"]).status == 0)
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED")
            // The exits are published before Kill's answer and the termination are counted:
            // wait for the write that carries all three, not the first with the exits.
            let samples = try await Self.settled(h, pod: "c1") {
                Self.value($0, "warden_exits_published_total") == 2
                    && Self.value($0, "warden_termination_seconds_count", ["reason": "kill"]) >= 1
                    && Self.value($0, "warden_ttrpc_requests_total", ["method": "Kill", "code": "0"]) >= 1
            }
            #expect(Self.value(samples, "warden_exits_published_total") == 2, "the exec's exit and c1's")
            #expect(Self.value(samples, "warden_termination_seconds_count", ["reason": "kill"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "terminations"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "sigkill"]) == 0)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "runsc_kill_failed"]) == 0)
            for verb in ["create", "start", "exec"] {
                #expect(Self.value(samples, "warden_runsc_call_seconds_count", ["verb": verb, "outcome": "ok"]) == 1, "\(verb)")
            }
            #expect(Self.value(samples, "warden_runsc_call_timeouts_total") == 0)
            for (method, count) in [("Create", 1.0), ("Start", 2), ("Exec", 1)] {
                #expect(Self.value(samples, "warden_ttrpc_requests_total", ["method": method, "code": "0"]) == count, "\(method)")
            }
            #expect(Self.value(samples, "warden_ttrpc_requests_total", ["method": "Kill", "code": "0"]) >= 1)
            #expect(Self.value(samples, "warden_container_state", ["container": "c1", "state": "stopped"]) == 1)
            #expect(Self.value(samples, "warden_tasks", ["state": "stopped"]) == 1, "c1 (ctr deleted its exec)")
            #expect(Self.value(samples, "warden_last_termination_seconds", ["sandbox": "c1", "reason": "kill", "outcome": "stopped"]) > 0)

            // warden status shows the pod.
            let status = try await runCommand(Self.warden, ["status", "--json", "--config", h.configPath])
            #expect(status.output.contains("\"pod\" : \"c1\"") && status.output.contains("\"c1\" : \"stopped\""), "\(status.output)")

            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    @Test func aWedgedPodIsCountedExactly() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "wedged pod metrics", deadlines: Self.deadlines) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("c1", status: "RUNNING")
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "hang-kill\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED", timeout: .seconds(5))
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            let samples = try await Self.settled(h, pod: "c1") {
                Self.value($0, "warden_termination_seconds_count") == 1 && Self.value($0, "warden_exits_published_total") == 1
            }
            #expect(Self.value(samples, "warden_termination_seconds_count", ["reason": "kill"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "runsc_kill_failed"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "grace_expired"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "sigkill"]) == 1)
            #expect(Self.value(samples, "warden_escalation_steps_total", ["step": "reap_timed_out"]) == 0)
            #expect(Self.value(samples, "warden_runsc_call_timeouts_total", ["verb": "kill"]) == 1)
            // fake-runsc serves a control socket: the kill went to it (its hang-kill hangs Signal).
            #expect(Self.value(samples, "warden_control_call_seconds_count", ["call": "kill", "outcome": "timed_out"]) == 1)
            #expect(Self.value(samples, "warden_runsc_call_seconds_count", ["verb": "kill", "outcome": "timed_out"]) == 0)
            #expect(Self.value(samples, "warden_exits_published_total") == 1)
            // The alert rules shipped in shim-config/ name series the shim writes.
            let rules = try String(contentsOfFile: Self.repository + "/shim-config/alerts.yaml", encoding: .utf8)
            let referenced = Set(rules.matches(of: #/warden_[a-z_]+/#).map { String($0.output) })
            #expect(referenced.count >= 4)
            for name in referenced {
                #expect(samples.contains { $0.name == name }, "alerts.yaml names \(name), which the shim writes")
            }
            // Within stop_deadline (3 s): the +Inf bucket only above it would mean a miss.
            #expect(Self.value(samples, "warden_termination_seconds_bucket", ["reason": "kill", "le": "5.0"]) == 1)
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    @Test func aFailedStartIsCountedExactly() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "failed start metrics", deadlines: Self.deadlines) { h in
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "fail-start\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"]).status != 0)
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            // runsc start fails, the teardown runs, then Start answers: wait for the write that
            // carries all three.
            let samples = try await Self.settled(h, pod: "c1") { samples in
                Self.value(samples, "warden_runsc_call_seconds_count", ["verb": "start", "outcome": "failed"]) == 1
                    && Self.value(samples, "warden_termination_seconds_count", ["reason": "failed"]) >= 1
                    && samples.contains { $0.name == "warden_ttrpc_requests_total" && $0.labels["method"] == "Start" }
            }
            #expect(Self.value(samples, "warden_runsc_call_seconds_count", ["verb": "create", "outcome": "ok"]) == 1)
            #expect(Self.value(samples, "warden_runsc_call_seconds_count", ["verb": "start", "outcome": "failed"]) == 1)
            #expect(Self.value(samples, "warden_ttrpc_requests_total", ["method": "Create", "code": "0"]) == 1)
            let startCalls = samples.filter { $0.name == "warden_ttrpc_requests_total" && $0.labels["method"] == "Start" }
            #expect(startCalls.count == 1 && startCalls.first?.labels["code"] != "0" && startCalls.first?.value == 1, "one failed Start")
            // The failed start's teardown is a termination of its own kind.
            #expect(Self.value(samples, "warden_termination_seconds_count", ["reason": "failed"]) == 1)
            #expect(Self.value(samples, "warden_termination_seconds_count", ["reason": "kill"]) == 0)
            try await h.waitForTask("c1", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    struct Found: Decodable {
        let kind: String
        let what: String
        let owner: String
    }

    struct Swept: Decodable {
        let finding: Found
        let done: Bool
        let action: String
    }

    /// The runc shim's stuck pod (`hang-kill`, `hang-delete`: its kill hangs, so does the
    /// cleanup containerd runs once the shim is killed by hand) leaves processes, a mount, a
    /// socket, a bundle, cgroups. doctor finds each with its owner; sweep --dry-run touches
    /// nothing; sweep clears them; doctor then finds nothing. A live Warden pod and a live
    /// runc-shim pod run on, untouched.
    @Test func doctorFindsTheRuncShimsMessAndSweepClearsItOnly() async throws {
        guard ShimHarness.available(.fake, also: [ContainerdUnderTest.runcShim]) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(90), "doctor and sweep", deadlines: Self.deadlines) { h in
            let runcRoot = h.containerd.dir.file("runc")
            let runc = ["--runtime", "io.containerd.runc.v2", "--runc-binary", ShimHarness.buildDirectory + "/fake-runsc", "--runc-root", runcRoot]
            let scope = [
            "--state", h.containerd.dir.file("state"), "--runsc-root", h.runscRoot, "--runsc-root", runcRoot,
            "--address", h.containerd.address, "--config", h.configPath,
            ]
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "w1", "sleep", "1000"]).status == 0)
            #expect(try await h.ctr(["run", "-d"] + runc + [ShimHarness.image, "live1", "sleep", "1000"]).status == 0)
            #expect(try await h.ctr(["run", "-d"] + runc + [ShimHarness.image, "mess1", "sleep", "1000"]).status == 0)
            for task in ["w1", "live1", "mess1"] { try await h.waitForTask(task, status: "RUNNING") }
            #expect(try await runCommand(Self.warden, ["doctor"] + scope).output.contains("nothing stale found"))

            // The stuck pod, and the operator's kill -9 of its shim.
            let faults = "\(runcRoot)/\(h.namespace)/faults"
            try "hang-kill\nhang-delete\n".write(toFile: faults, atomically: true, encoding: .utf8)
            _ = try? await h.ctr(["task", "kill", "-s", "SIGKILL", "mess1"], timeout: .seconds(3))
            let stuckShim = livingProcesses(mentioning: h.containerd.address)
                .filter { $0.contains("containerd-shim-runc-v2") && $0.contains("-id mess1") }
            #expect(stuckShim.count == 1, "\(stuckShim)")
            for entry in stuckShim { kill(Int32(entry.split(separator: ":").first ?? "") ?? 0, SIGKILL) }
            // containerd's cleanup of the dead shim runs its `delete`, which hangs on runsc delete.
            try await Task.sleep(for: .seconds(12))
            try FileManager.default.removeItem(atPath: faults)

            let doctor = try await runCommand(Self.warden, ["doctor", "--json"] + scope)
            let found = try JSONDecoder().decode([Found].self, from: Data(doctor.output.utf8))
            let kinds = Set(found.map(\.kind))
            for kind in ["orphan-process", "stale-mount", "stale-cgroup", "stale-bundle", "stale-socket"] {
                #expect(kinds.contains(kind), "doctor finds a \(kind): \(doctor.output)")
            }
            #expect(found.allSatisfy { $0.owner.contains("mess1") || $0.kind == "stale-socket" }, "all of it mess1's: \(doctor.output)")
            #expect(!found.contains { $0.owner.contains("w1") || $0.owner.contains("live1") }, "nothing of the live pods")

            let dryRun = try await runCommand(Self.warden, ["sweep", "--dry-run", "--json"] + scope)
            #expect(try JSONDecoder().decode([Swept].self, from: Data(dryRun.output.utf8)).allSatisfy { !$0.done })
            let again = try JSONDecoder().decode([Found].self, from: Data(try await runCommand(Self.warden, ["doctor", "--json"] + scope).output.utf8))
            #expect(again.count == found.count, "a dry run changes nothing")

            let swept = try await runCommand(Self.warden, ["sweep", "--json"] + scope)
            #expect(swept.status == 0, "\(swept.output)")
            let outcomes = try JSONDecoder().decode([Swept].self, from: Data(swept.output.utf8))
            #expect(outcomes.allSatisfy { $0.done }, "\(swept.output)")
            let after = try await runCommand(Self.warden, ["doctor"] + scope)
            #expect(after.output.contains("nothing stale found") && after.status == 0, "\(after.output)")

            // The live pods: untouched, still running, still answering.
            try await h.waitForTask("w1", status: "RUNNING", timeout: .milliseconds(500))
            try await h.waitForTask("live1", status: "RUNNING", timeout: .milliseconds(500))
            #expect(try await h.ctr(["task", "exec", "--exec-id", "x", "w1", "true"]).status == 0)

            for task in ["w1", "live1"] {
                #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", task]).status == 0)
                try await h.waitForTask(task, status: "STOPPED")
                #expect(try await h.ctr(["task", "rm", task]).status == 0)
            }
            let cgroupsAfterSweep = h.leftCgroups().filter { $0.hasSuffix("/mess1") }
            #expect(cgroupsAfterSweep.isEmpty, "mess1's cgroups after the sweep: \(cgroupsAfterSweep)")
            _ = try await h.ctr(["task", "rm", "-f", "mess1"], timeout: .seconds(10))
            for container in ["w1", "live1", "mess1"] { _ = try await h.ctr(["container", "rm", container]) }
        }
    }

    /// A task containerd lists as running whose process does not exist (its runtime reported
    /// a pid that names no process: fake-runsc's `lie-pid` under containerd's runc shim, which
    /// then never sees an exit for it). doctor names it with its containerd and namespace; a
    /// Warden pod beside it is not a finding. Cleared by killing that task's shim, after which
    /// containerd's own dead-shim cleanup removes the task.
    @Test func doctorFindsATaskWhoseProcessIsGone() async throws {
        guard ShimHarness.available(.fake, also: [ContainerdUnderTest.runcShim]) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(90), "doctor: task without process", deadlines: Self.deadlines) { h in
            let runcRoot = h.containerd.dir.file("runc")
            let runc = ["--runtime", "io.containerd.runc.v2", "--runc-binary", ShimHarness.buildDirectory + "/fake-runsc", "--runc-root", runcRoot]
            let scope = [
                "--state", h.containerd.dir.file("state"), "--runsc-root", h.runscRoot, "--runsc-root", runcRoot,
                "--address", h.containerd.address, "--config", h.configPath,
            ]
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "w2", "sleep", "1000"]).status == 0)
            try FileManager.default.createDirectory(atPath: "\(runcRoot)/\(h.namespace)", withIntermediateDirectories: true)
            let faults = "\(runcRoot)/\(h.namespace)/faults"
            try "lie-pid\n".write(toFile: faults, atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["run", "-d"] + runc + [ShimHarness.image, "lost1", "sleep", "1000"]).status == 0)
            try FileManager.default.removeItem(atPath: faults)
            for task in ["w2", "lost1"] { try await h.waitForTask(task, status: "RUNNING") }

            let doctor = try await runCommand(Self.warden, ["doctor", "--json"] + scope)
            let found = try JSONDecoder().decode([Found].self, from: Data(doctor.output.utf8))
            let lost = found.filter { $0.kind == "task-without-process" }
            #expect(lost.count == 1, "doctor finds the task: \(doctor.output)")
            #expect(lost.first?.what.hasPrefix("task lost1 (RUNNING, pid ") == true, "\(doctor.output)")
            #expect(lost.first?.owner.contains(h.namespace) == true && lost.first?.owner.contains(h.containerd.address) == true)
            #expect(!found.contains { $0.what.contains("w2") || $0.owner.contains("w2") }, "nothing of the live Warden pod: \(doctor.output)")
            #expect(doctor.status != 0, "doctor exits non-zero when it finds something")

            // The operator's way out: the lying task's shim killed by pid; containerd's dead-shim
            // cleanup then deletes the task (and fake-runsc's sandbox goes with runc delete).
            let shims = livingProcesses(mentioning: h.containerd.address).filter { $0.contains("containerd-shim-runc-v2") && $0.contains("-id lost1") }
            #expect(shims.count == 1, "\(shims)")
            _ = try? await h.ctr(["task", "kill", "-s", "SIGKILL", "lost1"], timeout: .seconds(3))
            for entry in shims { kill(Int32(entry.split(separator: ":").first ?? "") ?? 0, SIGKILL) }
            let deadline = ContinuousClock.now + .seconds(15)
            while try await h.ctr(["task", "ls"]).output.contains("lost1"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            // containerd's runc shim, SIGKILLed, leaves its socket (on 2.3 in the private
            // `<state>/s`, where containerd now puts every shim's): not Warden's to clean, so it
            // is removed by its name (containerd's: sha256 of address/namespace/id) before the audit.
            let digest = try await runCommand("/usr/bin/sha256sum", [], stdin: "\(h.containerd.address)/\(h.namespace)/lost1")
            try? FileManager.default.removeItem(atPath: h.containerd.dir.file("state/s/\(digest.output.prefix(64))"))
            let after = try await runCommand(Self.warden, ["doctor", "--json"] + scope)
            let left = try JSONDecoder().decode([Found].self, from: Data(after.output.utf8)).filter { $0.kind == "task-without-process" }
            #expect(left.isEmpty, "\(after.output)")

            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "w2"]).status == 0)
            try await h.waitForTask("w2", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "w2"]).status == 0)
            for container in ["w2", "lost1"] { _ = try await h.ctr(["container", "rm", container]) }
        }
    }
}
