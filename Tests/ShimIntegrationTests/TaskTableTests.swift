import Foundation
import Testing
import WardenTestSupport

/// issue 4's table, through a private containerd 1.6.20 and `ctr`, once with Debian's real
/// runsc and once with fake-runsc. Serialized: each run has its own containerd and sandboxes,
/// and two at once would only fight over two cores.
@Suite(.serialized)
struct TaskTableTests {
    static let tableLimit: Int64 = Int64(ProcessInfo.processInfo.environment["WARDEN_TABLE_LIMIT"] ?? "") ?? 240
    @Test(arguments: RuntimeKind.allCases)
    func taskAPIThroughCtr(_ runtime: RuntimeKind) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(Self.tableLimit), "task table (\(runtime))") { h in
            try await Self.table(h)
        }
    }

    static func table(_ h: ShimHarness) async throws {
        let image = ShimHarness.image
        // 1. output and exit codes: 0, 3, and a process that exits at once.
        let three = try await h.ctr(["run", "--rm"] + h.runtimeFlags + [image, "rc3", "sh", "-c", "echo out-three; exit 3"])
        #expect(three.status == 3, "exit 3: \(three.output)")
        #expect(three.output.contains("out-three"))
        let zero = try await h.ctr(["run", "--rm"] + h.runtimeFlags + [image, "rc0", "sh", "-c", "echo out-zero"])
        #expect(zero.status == 0, "exit 0: \(zero.output)")
        #expect(zero.output.contains("out-zero"))
        for attempt in 0..<3 {
            // `true` is done within a millisecond; gVisor's shim of this release reports 128.
            let fast = try await h.ctr(["run", "--rm"] + h.runtimeFlags + [image, "fast\(attempt)", "true"])
            #expect(fast.status == 0, "fast exit \(attempt): \(fast.output)")
            let fastFail = try await h.ctr(["run", "--rm"] + h.runtimeFlags + [image, "fastf\(attempt)", "false"])
            #expect(fastFail.status == 1, "fast failing exit \(attempt): \(fastFail.output)")
        }
        // stdin reaches the container and its EOF too.
        let echoed = try await h.ctr(["run", "--rm"] + h.runtimeFlags + [image, "stdin", "sh", "-c", "cat; echo end"], stdin: "piped-in\n")
        #expect(echoed.status == 0)
        #expect(echoed.output.contains("piped-in\nend"), "stdin: \(echoed.output)")

        // 2. terminal, exec (with and without tty), ps, pause/resume, metrics, kill, detach + delete.
        let tty = try await h.ctrWithTerminal(["run", "--rm", "-t"] + h.runtimeFlags + [image, "tty", "sh", "-c", "test -t 0 && test -t 1 && echo has-tty; exit 4"])
        #expect(tty.status == 4, "tty: \(tty.output)")
        #expect(tty.output.contains("has-tty"), "tty: \(tty.output)")

        let run = try await h.ctr(["run", "-d"] + h.runtimeFlags + [image, "det", "sleep", "1000"])
        #expect(run.status == 0, "run -d: \(run.output)")
        try await h.waitForTask("det", status: "RUNNING")
        let exec = try await h.ctr(["task", "exec", "--exec-id", "e1", "det", "sh", "-c", "echo in-exec; exit 5"])
        #expect(exec.status == 5, "exec: \(exec.output)")
        #expect(exec.output.contains("in-exec"))
        let execTTY = try await h.ctrWithTerminal(["task", "exec", "-t", "--exec-id", "e2", "det", "sh", "-c", "test -t 0 && echo exec-tty; exit 6"])
        #expect(execTTY.status == 6, "exec -t: \(execTTY.output)")
        #expect(execTTY.output.contains("exec-tty"))
        let execStdin = try await h.ctr(["task", "exec", "--exec-id", "e3", "det", "sh", "-c", "read line; echo got-$line"], stdin: "x1\n")
        #expect(execStdin.output.contains("got-x1"), "exec stdin: \(execStdin.output)")
        let ps = try await h.ctr(["task", "ps", "det"])
        #expect(ps.status == 0 && ps.output.split(separator: "\n").count >= 2, "ps: \(ps.output)")
        #expect(try await h.ctr(["task", "pause", "det"]).status == 0)
        try await h.waitForTask("det", status: "PAUSED")
        #expect(try await h.ctr(["task", "resume", "det"]).status == 0)
        try await h.waitForTask("det", status: "RUNNING")
        let metrics = try await h.ctr(["task", "metrics", "det"])
        #expect(metrics.status == 0 && metrics.output.contains("memory.usage_in_bytes"), "metrics: \(metrics.output)")
        #expect(try await h.ctr(["task", "kill", "-s", "SIGTERM", "det"]).status == 0)
        try await h.waitForTask("det", status: "STOPPED")
        #expect(try await h.ctr(["task", "rm", "det"]).status == 0)
        #expect(try await h.ctr(["container", "rm", "det"]).status == 0)

        _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [image, "k9", "sh", "-c", "trap '' TERM; sleep 1000"])
        try await h.waitForTask("k9", status: "RUNNING")
        #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "k9"]).status == 0)
        try await h.waitForTask("k9", status: "STOPPED")
        let deleted = try await h.ctr(["task", "rm", "k9"])
        #expect(deleted.status == 0, "task rm: \(deleted.output)")
        #expect(try await h.ctr(["container", "rm", "k9"]).status == 0)

        // 3. Two containers in one sandbox are served by one shim, which exits only when the last is gone.
        _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [
            "--annotation", "io.kubernetes.cri.container-type=sandbox", "--annotation", "io.kubernetes.cri.sandbox-id=pod1",
            image, "pod1", "sleep", "1000",
        ])
        _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [
            "--annotation", "io.kubernetes.cri.container-type=container", "--annotation", "io.kubernetes.cri.sandbox-id=pod1",
            image, "pod1-app", "sh", "-c", "echo app; sleep 1000",
        ])
        try await h.waitForTask("pod1", status: "RUNNING")
        try await h.waitForTask("pod1-app", status: "RUNNING")
        let tasks = try await h.ctr(["task", "ls"])
        let pids = tasks.output.split(separator: "\n").filter { $0.hasPrefix("pod1") }.map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] }
        #expect(pids.count == 2 && pids[0] == pids[1], "both containers report the sandbox pid: \(tasks.output)")
        #expect(h.shimProcesses().count == 1, "one shim for the pod: \(h.shimProcesses())")
        #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "pod1-app"]).status == 0)
        try await h.waitForTask("pod1-app", status: "STOPPED")
        #expect(try await h.ctr(["task", "rm", "pod1-app"]).status == 0)
        #expect(try await h.ctr(["container", "rm", "pod1-app"]).status == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(h.shimProcesses().count == 1, "the shim stays while the sandbox container lives")
        try await h.waitForTask("pod1", status: "RUNNING")
        #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "pod1"]).status == 0)
        try await h.waitForTask("pod1", status: "STOPPED")
        #expect(try await h.ctr(["task", "rm", "pod1"]).status == 0)
        #expect(try await h.ctr(["container", "rm", "pod1"]).status == 0)
        let deadline = ContinuousClock.now + .seconds(5)
        while !h.shimProcesses().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(h.shimProcesses().isEmpty, "the shim exits after its last container: \(h.shimProcesses())")
    }

    /// 4. containerd stopped and restarted while a container runs: still listed, killable,
    /// deletable, and its exit reported.
    @Test(arguments: RuntimeKind.allCases)
    func containerdRestart(_ runtime: RuntimeKind) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(120), "containerd restart (\(runtime))") { h in
            _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "survivor", "sleep", "1000"])
            try await h.waitForTask("survivor", status: "RUNNING")
            try await h.restartContainerd()
            #expect(h.shimProcesses().count == 1, "the shim outlives containerd")
            try await h.waitForTask("survivor", status: "RUNNING")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "survivor"]).status == 0)
            try await h.waitForTask("survivor", status: "STOPPED")
            let removed = try await h.ctr(["task", "rm", "survivor"])
            #expect(removed.status == 0)
            #expect(removed.output.contains("137"), "exit status reported after the restart: \(removed.output)")
            #expect(try await h.ctr(["container", "rm", "survivor"]).status == 0)
        }
    }
}
