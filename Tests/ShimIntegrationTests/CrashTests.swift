import Foundation
import Testing
import WardenTestSupport

/// Crash reasons through containerd (issue 33): a sandbox that dies unasked is reported, with
/// what runsc wrote to its panic log, in the shim log, the metrics, `warden status` and
/// `warden doctor`; its exit is published as always, and nothing is left but the crash record,
/// which the test removes (the leak audit allows nothing else).
@Suite(.serialized) struct CrashTests {
    static let deadlines = TerminationTests.deadlines
    static var warden: String { OperatorTests.warden }

    /// The record the crashed pod's shim left, checked through `warden doctor`, then removed.
    static func doctorShowsAndForget(_ h: ShimHarness, pod: String, _ expected: String) async throws {
        let doctor = try await runCommand(
            Self.warden,
            ["doctor", "--config", h.configPath, "--state", h.containerd.dir.file("state"), "--runsc-root", h.runscRoot,
             "--address", h.containerd.address])
        #expect(doctor.output.contains("sandbox crashes (newest first):") && doctor.output.contains(expected), "\(doctor.output)")
        print("warden doctor after the crash:\n\(doctor.output)")
        let record = h.metricsDirectory + "/\(h.namespace)_\(pod).crash.json"
        #expect(FileManager.default.fileExists(atPath: record), "crash record \(record)")
        try? FileManager.default.removeItem(atPath: record)
    }

    /// The pod's shim still serves after its sandbox died: its status shows the crash.
    static func statusShows(_ h: ShimHarness, _ expected: String) async throws -> String {
        var status = ""
        let deadline = ContinuousClock.now + .seconds(3)  // the metrics file's writes are coalesced
        repeat {
            status = try await runCommand(Self.warden, ["status", "--config", h.configPath]).output
            if status.contains(expected) { break }
            try await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < deadline
        #expect(status.contains("last crash: ") && status.contains(expected), "\(status)")
        return status
    }

    @Test func aSentryPanicIsReportedWithItsLine() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "sandbox panic", deadlines: Self.deadlines) { h in
            try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
            try "panic-sandbox\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "p1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("p1", status: "RUNNING")
            let sandbox = try #require(try await h.taskPid("p1"))
            try "".write(toFile: h.runscRoot + "/panic-now", atomically: true, encoding: .utf8)
            try await h.waitForTask("p1", status: "STOPPED", timeout: .seconds(5))
            let line = "panic: running on goroutine 20044225970656 (task goroutine for kernel.Task 0xc000a4e000 is 0)"
            let logged = "sandbox p1 crashed: runsc-sandbox pid \(sandbox) exited with status 2: \(line) (reason panic, panic log "
            let log = h.containerd.process.outputText
            #expect(log.contains(logged), "the shim log names the panic: \(log.suffix(3000))")
            if let entry = log.split(separator: "\n").first(where: { $0.contains("crashed: runsc-sandbox") }) {
                print("shim log: \(entry)")
            }
            let samples = try await OperatorTests.settled(h, pod: "p1") {
                OperatorTests.value($0, "warden_sandbox_crashes_total", ["reason": "panic"]) == 1
            }
            #expect(OperatorTests.value(samples, "warden_sandbox_crashes_total", ["reason": "panic"]) == 1)
            #expect(OperatorTests.value(samples, "warden_sandbox_crashes_total") == 1, "one crash, counted once")
            #expect(OperatorTests.value(samples, "warden_exits_published_total") == 1, "the exit published as always")
            print("warden status after the crash:\n" + (try await Self.statusShows(h, "runsc-sandbox pid \(sandbox) exited with status 2: \(line) (reason panic)")))
            try FileManager.default.removeItem(atPath: h.runscRoot + "/faults")
            try FileManager.default.removeItem(atPath: h.runscRoot + "/panic-now")
            try? FileManager.default.removeItem(atPath: h.runscRoot + "/fault-log")
            #expect(try await h.ctr(["task", "rm", "p1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "p1"]).status == 0)
            try await Self.doctorShowsAndForget(h, pod: "p1", "sandbox p1: runsc-sandbox pid \(sandbox) exited with status 2: \(line)")
        }
    }

    /// A real runsc made to crash. Not by SIGABRT: runsc-sandbox forwards the signals it gets
    /// to the container's init (SIGABRT ends `sleep`, and the sandbox exits 134 with it: a
    /// plain exit, rightly no crash). runsc's own `--panic-signal` makes a signal panic the
    /// sentry as a bug would, through Go's panic (the line, the goroutine dump, exit 2).
    @Test func aRealSandboxPanickedIsReportedFromItsPanicLog() async throws {
        guard ShimHarness.available(.real) else { return }
        try await ShimHarness.run(
            .real, limit: .seconds(90), "real sandbox panic", deadlines: Self.deadlines, runscConfig: #"panic-signal = "12""#
        ) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "a1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("a1", status: "RUNNING")
            let sandbox = try #require(try await h.taskPid("a1"))
            #expect(kill(sandbox, SIGUSR2) == 0)
            try await h.waitForTask("a1", status: "STOPPED", timeout: .seconds(10))
            let logged = "sandbox a1 crashed: runsc-sandbox pid \(sandbox) exited with status 2: panic: Signal-induced panic (reason panic"
            let log = h.containerd.process.outputText
            #expect(log.contains(logged), "the shim log names the panic: \(log.suffix(3000))")
            if let entry = log.split(separator: "\n").first(where: { $0.contains("crashed: runsc-sandbox") }) {
                print("shim log: \(entry)")
            }
            let samples = try await OperatorTests.settled(h, pod: "a1") {
                OperatorTests.value($0, "warden_sandbox_crashes_total", ["reason": "panic"]) == 1
            }
            #expect(OperatorTests.value(samples, "warden_sandbox_crashes_total") == 1, "one crash: the gofer went with its sandbox")
            print("warden status after the crash:\n" + (try await Self.statusShows(h, "exited with status 2: panic: Signal-induced panic (reason panic)")))
            let metrics = try await runCommand(Self.warden, ["metrics", "--config", h.configPath]).output
            print("warden metrics after the crash:\n" + metrics.split(separator: "\n").filter { $0.contains("crash") && !$0.hasPrefix("#") }.joined(separator: "\n"))
            #expect(try await h.ctr(["task", "rm", "a1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "a1"]).status == 0)
            try await Self.doctorShowsAndForget(h, pod: "a1", "panic: Signal-induced panic")
        }
    }

    /// The gofer dies while its sandbox runs on: a crash of its own, reported with the
    /// sandbox alive; stopping the pod afterwards is no crash.
    @Test func aGoferThatDiesUnderALiveSandboxIsReported() async throws {
        guard ShimHarness.available(.fake) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(60), "gofer death", deadlines: Self.deadlines) { h in
            #expect(try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "g1", "sleep", "1000"]).status == 0)
            try await h.waitForTask("g1", status: "RUNNING")
            let gofers = livingProcesses(mentioning: h.runscRoot).filter { $0.contains("gofer-main") }
            #expect(gofers.count == 1, "\(gofers)")
            let gofer = try #require(Int32(gofers.first?.split(separator: ":").first ?? ""))
            #expect(kill(gofer, SIGKILL) == 0)
            let samples = try await OperatorTests.settled(h, pod: "g1") {
                OperatorTests.value($0, "warden_sandbox_crashes_total", ["reason": "gofer"]) == 1
            }
            #expect(OperatorTests.value(samples, "warden_sandbox_crashes_total", ["reason": "gofer"]) == 1)
            #expect(h.containerd.process.outputText.contains("sandbox g1 crashed: fake-runsc pid \(gofer) killed by signal 9"))
            try await h.waitForTask("g1", status: "RUNNING")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "g1"]).status == 0)
            try await h.waitForTask("g1", status: "STOPPED")
            let after = try await OperatorTests.samples(h, pod: "g1")
            #expect(OperatorTests.value(after, "warden_sandbox_crashes_total") == 1, "the pod's own stop is no crash")
            #expect(try await h.ctr(["task", "rm", "g1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "g1"]).status == 0)
            try await Self.doctorShowsAndForget(h, pod: "g1", "fake-runsc pid \(gofer) killed by signal 9")
        }
    }
}
