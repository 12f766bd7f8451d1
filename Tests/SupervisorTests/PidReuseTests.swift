import Foundation
import LinuxSys
import Supervisor
import Testing
import WardenTestSupport

/// A pid that was a tracked process and now belongs to an unrelated one is never signalled:
/// not through the supervisor's pidfds, not through the recorded (pid, start time) pairs the
/// `delete` command works from. The pid is really recycled: `ns_last_pid` makes the kernel
/// hand it to the next process.
@Suite(.serialized, .timeLimit(.minutes(1))) struct PidReuseTests {
    static var canRecyclePids: Bool { ProcessIdentity.uid == 0 && FileDescriptor.exists("/proc/sys/kernel/ns_last_pid") }

    /// Starts `sleep 30` (untracked) with exactly `pid`, retrying while other processes race
    /// for it; nil if it could not be had.
    static func recycle(_ pid: Int32) throws -> Int32? {
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        for _ in 0..<50 {
            let control = try FileDescriptor.open("/proc/sys/kernel/ns_last_pid", forWriting: true)
            try FileDescriptor.writeAll(control, Array("\(pid - 1)".utf8))
            FileDescriptor.close(control)
            let spawned = try Spawn.spawn(
                path: "/bin/sleep", arguments: ["30"], environment: [], stdin: null, stdout: null, stderr: null,
                newSession: true)
            if spawned == pid { return spawned }
            ChildProcesses.signalUnreaped(spawned, 9)
            _ = ChildProcesses.waitBlocking(spawned)
        }
        return nil
    }

    static func stop(_ pid: Int32) {
        ChildProcesses.signalUnreaped(pid, 9)
        _ = ChildProcesses.waitBlocking(pid)
    }

    @Test func theSupervisorNeverSignalsARecycledPid() async throws {
        guard Self.canRecyclePids else { return }
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let stdio = try Stdio()
        defer { stdio.close() }
        let child = try supervisor.sh("exit 0", stdio)
        _ = try await withTimeout(.seconds(10)) { await supervisor.wait(child) }
        let stranger = try #require(try Self.recycle(child.pid), "could not recycle pid \(child.pid)")
        defer { Self.stop(stranger) }
        #expect(try supervisor.signal(child, 9) == false, "a signal to the reaped child was sent")
        try await Task.sleep(for: .milliseconds(100))
        #expect(processExists(stranger) && !isZombie(stranger), "the unrelated process holding pid \(stranger) was hit")
    }

    @Test func recordedProcessesAreMatchedByStartTimeNotPid() async throws {
        guard Self.canRecyclePids else { return }
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        let original = try Spawn.spawn(
            path: "/bin/sleep", arguments: ["30"], environment: [], stdin: null, stdout: null, stderr: null, newSession: true)
        let record = try #require(ProcessRecord.of(original))
        // Start times count clock ticks (10 ms): a recycled pid is told apart once the recorded
        // process lived longer than a tick, as any recorded sandbox or gofer has.
        try await Task.sleep(for: .milliseconds(50))
        Self.stop(original)
        let stranger = try #require(try Self.recycle(original), "could not recycle pid \(original)")
        defer { Self.stop(stranger) }
        let report = await RecordedProcesses.kill([record], within: .milliseconds(200))
        #expect(report.skipped == [original] && report.signalled.isEmpty, "\(report)")
        #expect(processExists(stranger) && !isZombie(stranger), "the process now holding pid \(stranger) was hit")

        // The same record, now naming the live process: it and its descendants are killed.
        let current = try #require(ProcessRecord.of(stranger))
        let killed = await RecordedProcesses.kill([current], within: .seconds(2))
        #expect(killed.signalled == [stranger] && killed.survivors.isEmpty, "\(killed)")
    }

    @Test func recordsRoundTripAndIgnoreGarbage() {
        let records = [ProcessRecord(pid: 12, startTime: 345), ProcessRecord(pid: 7, startTime: 8)]
        #expect(RecordedProcesses.decode(RecordedProcesses.encode(records)) == records)
        #expect(RecordedProcesses.decode("x y\n-1 5\n12\n\n9 10\n") == [ProcessRecord(pid: 9, startTime: 10)])
    }
}
