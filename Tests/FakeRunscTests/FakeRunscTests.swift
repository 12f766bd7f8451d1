import Foundation
import LinuxSys
import Runsc
import Supervisor
import Testing
import WardenTestSupport

/// fake-runsc driven through the Runsc driver, as the shim will drive it: its process model
/// (daemonized sandbox and gofer re-parented to the subreaper, pid file, state under --root)
/// and its faults. Every test ends with a leak audit.
struct FakeRunscHarness {
    let dir: TempDir
    let supervisor: Supervisor
    let runsc: Runsc

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/fake-runsc"
    }

    init(faults: [String] = [], callTimeout: Duration = .seconds(5), script: String) throws {
        try ChildProcesses.becomeSubreaper()
        dir = try TempDir("wfr")
        try FileManager.default.createDirectory(atPath: dir.file("bundle"), withIntermediateDirectories: true)
        let spec = ["process": ["args": ["/bin/sh", "-c", script]]]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: dir.file("bundle/config.json")))
        supervisor = try testSupervisor()
        runsc = Runsc(
            configuration: RunscConfiguration(
                binary: Self.binary, root: dir.file("root"), flags: [(key: "network", value: "none")],
                environment: ["PATH=/usr/bin:/bin", "WARDEN_FAKE_RUNSC_FAULTS=\(faults.joined(separator: ","))"],
                scratchDirectory: dir.path, callTimeout: callTimeout),
            supervisor: supervisor)
    }

    /// Sandbox and gofer, adopted so that they are reaped here (the gofer pid is fake-runsc's
    /// own bookkeeping; the shim will find real gofers as re-parented children).
    func adoptSandboxAndGofer(_ id: String) throws -> (sandbox: Child, gofer: Child) {
        let sandboxPid = try #require(Int32(try String(contentsOfFile: dir.file("pid"), encoding: .utf8)))
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("root/\(id)_sandbox:\(id).state")))) as? [String: Any]
        let goferPid = try #require((state?["goferPid"] as? NSNumber)?.int32Value)
        return (try supervisor.adopt(pid: sandboxPid), try supervisor.adopt(pid: goferPid))
    }

    /// Nothing left: no tracked process running, no runsc state, no capture files.
    func auditNothingLeft(_ children: [Child]) async throws {
        for child in children {
            let outcome = try await withTimeout(.seconds(5), "exit of \(child)") { await supervisor.wait(child) }
            #expect(outcome != .abandoned)
            #expect(!processExists(child.pid), "\(child) still exists")
        }
        // Nothing the container started survives it.
        let marker = "WARDEN_FAKE_RUNSC_CONTAINER=\(dir.file("root"))"
        let survivors = (try FileManager.default.contentsOfDirectory(atPath: "/proc")).filter { entry in
            guard Int32(entry) != nil, let environ = procBytes("/proc/\(entry)/environ") else { return false }
            return String(decoding: environ, as: UTF8.self).contains(marker)
        }
        #expect(survivors.isEmpty, "container processes left: \(survivors)")
        let state = (try? FileManager.default.contentsOfDirectory(atPath: dir.file("root"))) ?? []
        #expect(state.isEmpty, "runsc state left: \(state)")
        let captures = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("runsc-") }
        #expect(captures.isEmpty, "capture files left: \(captures)")
        cleanup()
    }

    /// Always run (defer): kills whatever is still tracked, stops the supervisor, removes the
    /// temp dir, so a failing test does not leave processes or files behind.
    func cleanup() {
        _ = try? FakeRunscHarness.forceDelete(binary: Self.binary, root: dir.file("root"))
        supervisor.shutdown()
        dir.remove()
    }

    /// `fake-runsc delete --force` for every container left under `root`.
    static func forceDelete(binary: String, root: String) throws {
        for id in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--root=\(root)", "delete", "--force", id]
            try process.run()
            process.waitUntilExit()
        }
    }
}

@Suite(.timeLimit(.minutes(1)), .serialized) struct FakeRunscTests {
    @Test func lifecycleReportsTheContainerExitStatus() async throws {
        let fake = try FakeRunscHarness(script: "exit 7")
        defer { fake.cleanup() }
        try await withTimeout(.seconds(20)) {
            try await fake.runsc.create("c1", bundle: fake.dir.file("bundle"), pidFile: fake.dir.file("pid"))
            let (sandbox, gofer) = try fake.adoptSandboxAndGofer("c1")
            #expect(try await fake.runsc.state("c1").status == "created")
            try await fake.runsc.start("c1")
            #expect(try await fake.runsc.wait("c1") == 7)
            // The sandbox exits with the container's status, as runsc's does: the shim can
            // learn it from the pidfd even when `runsc wait` cannot answer.
            #expect(await fake.supervisor.wait(sandbox) == .exited(.exited(7)))
            #expect(try await fake.runsc.state("c1").status == "stopped")
            try await fake.runsc.delete("c1")
            await #expect(throws: RunscError.self) { try await fake.runsc.state("c1") }
            try await fake.auditNothingLeft([sandbox, gofer])
        }
    }

    @Test func killStopsARunningContainer() async throws {
        let fake = try FakeRunscHarness(script: "sleep 30; true")
        defer { fake.cleanup() }
        try await withTimeout(.seconds(20)) {
            try await fake.runsc.create("c1", bundle: fake.dir.file("bundle"), pidFile: fake.dir.file("pid"))
            let (sandbox, gofer) = try fake.adoptSandboxAndGofer("c1")
            try await fake.runsc.start("c1")
            #expect(try await fake.runsc.ps("c1").count == 1)
            try await fake.runsc.kill("c1", signal: 9)
            #expect(await fake.supervisor.wait(sandbox) == .exited(.exited(137)))
            // Signalling a stopped container is classified, not a generic failure.
            do {
                try await fake.runsc.kill("c1", signal: 9)
                Issue.record("killed a stopped container")
            } catch {
                guard case .alreadyStopped? = error as? RunscError else {
                    Issue.record("wrong error \(error)")
                    return
                }
            }
            try await fake.runsc.delete("c1")
            try await fake.auditNothingLeft([sandbox, gofer])
        }
    }

    /// hang-kill: the Kill call returns at runsc_call_timeout and its runsc process is gone;
    /// `delete --force` still cleans the sandbox.
    @Test func hungKillIsBoundedAndForceDeleteCleansUp() async throws {
        let fake = try FakeRunscHarness(faults: ["hang-kill"], callTimeout: .milliseconds(400), script: "sleep 30; true")
        defer { fake.cleanup() }
        try await withTimeout(.seconds(20)) {
            try await fake.runsc.create("c1", bundle: fake.dir.file("bundle"), pidFile: fake.dir.file("pid"))
            let (sandbox, gofer) = try fake.adoptSandboxAndGofer("c1")
            try await fake.runsc.start("c1")
            let start = ContinuousClock.now
            await #expect(throws: RunscError.timedOut(verb: "kill", after: .milliseconds(400))) {
                try await fake.runsc.kill("c1", signal: 9)
            }
            #expect(ContinuousClock.now - start < TestBounds.cutShort(.milliseconds(400)))
            #expect(fake.supervisor.runningCount == 2, "only the sandbox and gofer should remain tracked")
            try await fake.runsc.delete("c1", force: true)
            try await fake.auditNothingLeft([sandbox, gofer])
        }
    }

    /// A misspelt fault must not leave a test running with no fault: fake-runsc refuses every
    /// call, naming it.
    @Test func anUnknownFaultIsRefusedByName() async throws {
        let fake = try FakeRunscHarness(faults: ["hang-kil"], script: "true")
        defer { fake.cleanup() }
        try await withTimeout(.seconds(20)) {
            await #expect {
                try await fake.runsc.create("c1", bundle: fake.dir.file("bundle"), pidFile: fake.dir.file("pid"))
            } throws: { error in
                "\(error)".contains("unknown fault \"hang-kil\"")
            }
            let state = (try? FileManager.default.contentsOfDirectory(atPath: fake.dir.file("root"))) ?? []
            #expect(state.isEmpty, "a refused create left state: \(state)")
        }
    }

    /// crash-on-create leaves a sandbox and gofer behind, as the field's failed creates do;
    /// `delete --force` removes them.
    @Test func crashOnCreateLeavesProcessesThatForceDeleteRemoves() async throws {
        let fake = try FakeRunscHarness(faults: ["crash-on-create"], script: "exit 0")
        defer { fake.cleanup() }
        try await withTimeout(.seconds(20)) {
            await #expect(throws: RunscError.commandFailed(verb: "create", exitStatus: 1, detail: "creating container: fake crash-on-create")) {
                try await fake.runsc.create("c1", bundle: fake.dir.file("bundle"), pidFile: fake.dir.file("pid"))
            }
            let (sandbox, gofer) = try fake.adoptSandboxAndGofer("c1")
            #expect(fake.supervisor.outcome(sandbox) == nil)
            try await fake.runsc.delete("c1", force: true)
            try await fake.auditNothingLeft([sandbox, gofer])
        }
    }
}
