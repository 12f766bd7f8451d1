import Foundation
import LinuxSys
import Supervisor
import Testing
import WardenTestSupport

struct Stdio {
    let null: Int32
    init() throws { null = try FileDescriptor.open("/dev/null") }
    func close() { FileDescriptor.close(null) }
}

extension Supervisor {
    func sh(_ script: String, _ stdio: Stdio) throws -> Child {
        try spawn(path: "/bin/sh", arguments: ["-c", script], environment: ["PATH=/usr/bin:/bin"],
                  stdin: stdio.null, stdout: stdio.null, stderr: stdio.null)
    }
}

@Suite(.timeLimit(.minutes(1))) struct SupervisorTests {
    @Test(arguments: [0, 3, 7, 255])
    func reapsTheRealExitStatus(code: Int32) async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.sh("exit \(code)", stdio)
        let outcome = try await withTimeout(.seconds(10)) { await supervisor.wait(child) }
        #expect(outcome == .exited(.exited(code)))
        #expect(!processExists(child.pid), "pid \(child.pid) left as a zombie")
    }

    /// An exit within a millisecond of spawning is still caught with its status.
    @Test func immediateExitIsNotLost() async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let children = try (0..<50).map { i in
            try supervisor.spawn(path: "/bin/sh", arguments: ["-c", "exit \(i)"], environment: [],
                                 stdin: stdio.null, stdout: stdio.null, stderr: stdio.null)
        }
        let outcomes = try await withTimeout(.seconds(20)) {
            var outcomes: [ChildOutcome] = []
            for child in children { outcomes.append(await supervisor.wait(child)) }
            return outcomes
        }
        #expect(outcomes == (0..<50).map { .exited(.exited(Int32($0))) })
        #expect(supervisor.runningCount == 0)
    }

    @Test func signalsThroughThePidfd() async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.spawn(path: "/bin/sleep", arguments: ["30"], environment: [],
                                         stdin: stdio.null, stdout: stdio.null, stderr: stdio.null)
        #expect(supervisor.outcome(child) == nil)
        #expect(try supervisor.signal(child, SIGKILL))
        let outcome = try await withTimeout(.seconds(5)) { await supervisor.wait(child) }
        #expect(outcome == .exited(.signaled(SIGKILL)))
        #expect(outcome == .exited(.signaled(9)))
        if case .exited(let status) = outcome { #expect(status.code == 137) }
    }

    /// Once a child is reaped its pid may be reused; the supervisor must refuse to signal it.
    @Test func neverSignalsAReapedChild() async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.sh("exit 0", stdio)
        _ = try await withTimeout(.seconds(5)) { await supervisor.wait(child) }
        #expect(try supervisor.signal(child, SIGKILL) == false)
    }

    @Test func manyWaitersOfOneChild() async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.sh("sleep 0.2; exit 4", stdio)
        let outcomes = try await withTimeout(.seconds(10)) {
            await withTaskGroup(of: ChildOutcome.self) { group in
                for _ in 0..<20 { group.addTask { await supervisor.wait(child) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(outcomes == Array(repeating: .exited(.exited(4)), count: 20))
    }

    /// A daemonized grandchild (as `runsc create` leaves runsc-sandbox) is re-parented to the
    /// subreaper; adopted by pid, it is signalled and reaped with its real status.
    @Test func adoptsAReparentedGrandchild() async throws {
        try ChildProcesses.becomeSubreaper()
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let dir = try TempDir()
        defer { dir.remove() }
        let pidFile = dir.file("pid")
        let parent = try supervisor.sh("sleep 30 & echo $! > \(pidFile); exit 0", stdio)
        #expect(try await withTimeout(.seconds(5)) { await supervisor.wait(parent) } == .exited(.exited(0)))
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let pid = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        let sandbox = try supervisor.adopt(pid: pid)
        #expect(try supervisor.signal(sandbox, SIGTERM))
        let outcome = try await withTimeout(.seconds(5)) { await supervisor.wait(sandbox) }
        #expect(outcome == .exited(.signaled(SIGTERM)))
        #expect(!processExists(pid))
    }

    @Test func adoptingAGoneProcessFailsWithESRCH() throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        do {
            _ = try supervisor.adopt(pid: 4_000_000)  // above pid_max's ceiling
            Issue.record("adopted a pid that cannot exist")
        } catch {
            #expect(error.code == Errno.ESRCH || error.code == 22 /* EINVAL */)
        }
    }

    @Test func shutdownReleasesWaiters() async throws {
        let supervisor = try testSupervisor()
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.spawn(path: "/bin/sleep", arguments: ["30"], environment: [],
                                         stdin: stdio.null, stdout: stdio.null, stderr: stdio.null)
        let waiter = Task { await supervisor.wait(child) }
        try await Task.sleep(for: .milliseconds(100))
        supervisor.shutdown()
        #expect(try await withTimeout(.seconds(5)) { await waiter.value } == .abandoned)
        ChildProcesses.signalUnreaped(child.pid, SIGKILL)  // test cleanup by pid: it was never reaped
        _ = ChildProcesses.reap(child.pid)
    }
}

/// The orphan sweep, run in the probe's own process: orphans re-parented to the subreaper
/// are reaped by exact pid, tracked children keep their statuses.
@Suite(.timeLimit(.minutes(1))) struct OrphanSweepTests {
    @Test func sweepReapsOrphansWithoutStealingTrackedExits() async throws {
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let probePath = binDir + "/supervisor-sweep-probe"
        #expect(FileManager.default.isExecutableFile(atPath: probePath), "\(probePath) not built")
        let probe = try ChildProcess(probePath, [])
        let status = try await probe.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "probe said: \(probe.outputText)")
        #expect(probe.outputText.contains("PASS"))
    }

    /// As the shim runs it: no sweep timer, SIGCHLD through a signalfd wakes the sweep.
    @Test func sigchldThroughASignalfdReapsOrphansWithNoTimer() async throws {
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let probe = try ChildProcess(binDir + "/supervisor-sweep-probe", ["--signalfd"])
        let status = try await probe.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "probe said: \(probe.outputText)")
        #expect(probe.outputText.contains("PASS"))
    }
}
