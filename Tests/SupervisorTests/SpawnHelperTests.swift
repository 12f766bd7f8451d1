import CLinuxSys
import Foundation
import LinuxSys
import Supervisor
import Testing
import WardenTestSupport

/// The spawn helper the confined shim creates every process through (CLinuxSys/spawner.c):
/// what it starts is the caller's own child (so pidfds, reaping and exit statuses work as
/// for posix_spawn), with exactly the descriptors asked for; a failed exec is an error naming
/// the binary and leaves no zombie; the helper exits when its owner closes it.
@Suite(.serialized, .timeLimit(.minutes(1))) struct SpawnHelperTests {
    func supervisor(_ helper: SpawnHelper) throws -> Supervisor {
        var options = Supervisor.Options()
        options.reapsUnknownChildren = false  // Foundation.Process children share this process
        return try Supervisor(options: options, spawnHelper: helper)
    }

    /// Runs `script` through `helper` with fd 3 a pipe, as the caller's child: its outcome and
    /// what it wrote to fd 3.
    func runReadingFD3(_ helper: SpawnHelper, _ script: String) async throws -> (ChildOutcome, String) {
        let supervisor = try supervisor(helper)
        defer { supervisor.shutdown() }
        let null = try FileDescriptor.open("/dev/null")
        let output = try FileDescriptor.pipe()
        let child = try supervisor.spawn(
            path: "/bin/sh", arguments: ["-c", script],
            environment: ["PATH=/bin:/usr/bin"], descriptors: [null, output.write, null, output.write])
        FileDescriptor.close(output.write)
        FileDescriptor.close(null)
        let outcome = try await withTimeout(.seconds(10), "the child's exit") { await supervisor.wait(child) }
        let text = String(decoding: FileDescriptor.readToEnd(output.read, limit: 1 << 16), as: UTF8.self)
        FileDescriptor.close(output.read)
        return (outcome, text)
    }

    @Test func aSpawnedProcessIsTheCallersChildWithItsStatusAndDescriptors() async throws {
        let helper = try SpawnHelper.start()
        defer { helper.close() }
        // fd 3 is passed on; anything else the test process holds must not be.
        let (outcome, text) = try await runReadingFD3(helper, "echo ppid=$PPID; ls /proc/self/fd | wc -l >&3; exit 3")
        #expect(outcome == .exited(.exited(3)))
        #expect(text.contains("ppid=\(getpid())"), "the caller is the parent, not the helper: \(text)")
        // 0, 1, 2, 3 and the one ls opens to read the directory.
        #expect(text.split(separator: "\n").last.map(String.init) == "5", "descriptors in the child: \(text)")
    }

    /// A child starts with every signal at its default and none blocked, whatever the shim
    /// had: an ignored disposition survives execve, including glibc's internal signals 32 and
    /// 33, which glibc's own sigaction cannot reset (the shim had them ignored, and so did
    /// every runsc it started).
    @Test func aSpawnedProcessStartsWithNoSignalIgnoredOrBlocked() async throws {
        // The helper is a fork of this process: give it what the shim had.
        #expect(clinux_test_ignore_signal(32, 1) == 0)
        #expect(clinux_test_ignore_signal(33, 1) == 0)
        let started = Result { try SpawnHelper.start() }
        _ = clinux_test_ignore_signal(32, 0)
        _ = clinux_test_ignore_signal(33, 0)
        let helper = try started.get()
        defer { helper.close() }
        let (_, text) = try await runReadingFD3(helper, "grep -E '^Sig(Ign|Blk)' /proc/self/status >&3")
        #expect(text.contains("SigIgn:\t0000000000000000"), "ignored in the child: \(text)")
        #expect(text.contains("SigBlk:\t0000000000000000"), "blocked in the child: \(text)")
    }

    @Test func aFailedExecIsAnErrorNamingTheBinaryAndLeavesNoZombie() throws {
        let helper = try SpawnHelper.start()
        defer { helper.close() }
        let supervisor = try supervisor(helper)
        defer { supervisor.shutdown() }
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        let before = zombieChildren()
        #expect {
            _ = try supervisor.spawn(
                path: "/nonexistent/runsc", arguments: [], environment: [], stdin: null, stdout: null, stderr: null)
        } throws: { error in
            guard let error = error as? Errno else { return false }
            return error.code == ENOENT && error.description.contains("/nonexistent/runsc")
        }
        // Other suites run beside this one and their children are this process's too: a zombie
        // of theirs is reaped by their own supervisor within moments, the failed child never is.
        let deadline = ContinuousClock.now + .seconds(3)
        var unreaped = Set(zombieChildren()).subtracting(before)
        while !unreaped.isEmpty && ContinuousClock.now < deadline {
            usleep(20_000)
            unreaped = Set(zombieChildren()).subtracting(before).intersection(unreaped)
        }
        #expect(unreaped.isEmpty, "the failed child was reaped")
        // The helper goes on serving.
        let child = try supervisor.spawn(path: "/bin/true", arguments: [], environment: [], stdin: null, stdout: null, stderr: null)
        #expect(child.pid > 0)
    }

    @Test func theHelperExitsWhenClosedAndSpawnsThenFailWithAClearError() async throws {
        let helper = try SpawnHelper.start()
        let supervisor = try supervisor(helper)
        defer { supervisor.shutdown() }
        try await withTimeout(.seconds(5), "the helper naming itself") {
            while processName("\(helper.pid):") != "warden-spawner" { try await Task.sleep(for: .milliseconds(5)) }
        }
        helper.close()
        try await withTimeout(.seconds(5), "the helper's exit") {
            while processExists(helper.pid) { try await Task.sleep(for: .milliseconds(20)) }
        }
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        #expect(throws: Errno.self) {
            _ = try supervisor.spawn(path: "/bin/true", arguments: [], environment: [], stdin: null, stdout: null, stderr: null)
        }
    }

    /// Zombie children of this process.
    func zombieChildren() -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = procText("/proc/\(pid)/stat"),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[0] == "Z" && fields[1] == "\(getpid())"
        }.sorted()
    }
}
