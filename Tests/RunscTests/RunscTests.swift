import Foundation
import LinuxSys
import Runsc
import Supervisor
import Testing
import WardenTestSupport

/// A stand-in runsc: records its argv, writes its pid, and behaves as FAKE_MODE says.
let fakeRunscScript = """
    #!/bin/sh
    echo "$@" >> "$FAKE_DIR/argv"
    echo $$ > "$FAKE_DIR/pid"
    case "$FAKE_MODE" in
      hang) exec sleep 60 ;;
      not-found) echo 'loading container: container "c1" does not exist' >&2; exit 1 ;;
      stopped) echo 'cannot signal container: container is not running' >&2; exit 128 ;;
      garbage) echo 'not json'; exit 0 ;;
      fail) echo 'something broke' >&2; exit 3 ;;
      state-gone) echo 'loading container: open /run/w/k8s.io/p1/c1_sandbox:p1.state: no such file or directory' >&2; exit 128 ;;
      root-netns) echo 'starting container: setting up network: creating interfaces from net namespace "/proc/7/ns/net": cannot run with network enabled in root network namespace' >&2; exit 128 ;;
    esac
    for arg in "$@"; do
      case "$arg" in
        state) echo '{"ociVersion":"1.0.0","id":"c1","pid":4242,"status":"running","bundle":"/b"}' ;;
        ps) echo '[1,7,9]' ;;
      esac
    done
    exit 0
    """

struct FakeRunsc {
    let dir: TempDir
    let supervisor: Supervisor
    let runsc: Runsc

    init(mode: String = "", callTimeout: Duration = .seconds(5)) throws {
        dir = try TempDir("wrs")
        try fakeRunscScript.write(toFile: dir.file("runsc"), atomically: true, encoding: .utf8)
        chmod(dir.file("runsc"), 0o755)
        supervisor = try testSupervisor()
        runsc = Runsc(
            configuration: RunscConfiguration(
                binary: dir.file("runsc"), root: dir.file("root"),
                flags: [(key: "platform", value: "systrap"), (key: "network", value: "none")],
                environment: ["PATH=/usr/bin:/bin", "FAKE_DIR=\(dir.path)", "FAKE_MODE=\(mode)"],
                scratchDirectory: dir.path, callTimeout: callTimeout),
            supervisor: supervisor)
    }

    var argv: [String] {
        ((try? String(contentsOfFile: dir.file("argv"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
    var lastPid: Int32? {
        Int32(((try? String(contentsOfFile: dir.file("pid"), encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func finish() {
        supervisor.shutdown()
        dir.remove()
    }
}

@Suite(.timeLimit(.minutes(1))) struct RunscTests {
    @Test func argvCarriesRootAndSortedConfigFlags() async throws {
        let fake = try FakeRunsc()
        defer { fake.finish() }
        try await withTimeout(.seconds(10)) {
            try await fake.runsc.kill("c1", signal: 9, all: true)
            try await fake.runsc.delete("c1", force: true)
            try await fake.runsc.pause("c1")
            try await fake.runsc.resume("c1")
            try await fake.runsc.start("c1")
        }
        let root = "--root=\(fake.dir.file("root")) --network=none --platform=systrap"
        #expect(fake.argv == [
            "\(root) kill --all c1 9", "\(root) delete --force c1", "\(root) pause c1", "\(root) resume c1",
            "\(root) start c1",
        ])
    }

    @Test func decodesStateAndPs() async throws {
        let fake = try FakeRunsc()
        defer { fake.finish() }
        let state = try await withTimeout(.seconds(10)) { try await fake.runsc.state("c1") }
        #expect(state == RunscState(id: "c1", pid: 4242, status: "running"))
        #expect(try await withTimeout(.seconds(10)) { try await fake.runsc.ps("c1") } == [1, 7, 9])
    }

    /// A runsc that hangs is killed at the deadline and reaped: the call returns on time and
    /// no runsc process is left.
    @Test func hungCallIsKilledAtItsDeadline() async throws {
        let fake = try FakeRunsc(mode: "hang", callTimeout: .milliseconds(300))
        defer { fake.finish() }
        let start = ContinuousClock.now
        await #expect(throws: RunscError.timedOut(verb: "kill", after: .milliseconds(300))) {
            try await withTimeout(.seconds(10)) { try await fake.runsc.kill("c1", signal: 15) }
        }
        #expect(ContinuousClock.now - start < TestBounds.cutShort(.milliseconds(300)))
        let pid = try #require(fake.lastPid)
        // By its environment, not its pid alone: PidReuseTests, running alongside, recycles pids.
        let environment = procText("/proc/\(pid)/environ") ?? ""
        #expect(!(processExists(pid) && environment.contains("FAKE_DIR=\(fake.dir.path)")), "hung runsc \(pid) still there")
        #expect(fake.supervisor.runningCount == 0)
        // Its capture files are gone too.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fake.dir.path).filter { $0.hasSuffix(".out") || $0.hasSuffix(".err") }
        #expect(leftovers.isEmpty)
    }

    /// A caller that gives up (cancellation) takes its runsc process down with it.
    @Test func cancelledCallKillsRunsc() async throws {
        let fake = try FakeRunsc(mode: "hang", callTimeout: .seconds(30))
        defer { fake.finish() }
        let call = Task { try await fake.runsc.state("c1") }
        try await Task.sleep(for: .milliseconds(300))
        call.cancel()
        _ = try? await withTimeout(.seconds(5)) { try await call.value }
        let pid = try #require(fake.lastPid)
        for _ in 0..<100 where processExists(pid) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!processExists(pid))
    }

    /// `wait` has no deadline of its own, but a caller that gives up still takes runsc down.
    @Test func cancelledUnboundedWaitKillsRunsc() async throws {
        let fake = try FakeRunsc(mode: "hang")
        defer { fake.finish() }
        let call = Task { try await fake.runsc.wait("c1") }
        try await Task.sleep(for: .milliseconds(300))
        call.cancel()
        await #expect(throws: RunscError.cancelled(verb: "wait")) {
            try await withTimeout(.seconds(5), "cancelled wait to return") { try await call.value }
        }
        let pid = try #require(fake.lastPid)
        for _ in 0..<100 where processExists(pid) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!processExists(pid))
    }

    @Test(arguments: [
        ("not-found", RunscError.notFound(verb: "kill", detail: "loading container: container \"c1\" does not exist")),
        ("stopped", .alreadyStopped(verb: "kill", detail: "cannot signal container: container is not running")),
        ("fail", .commandFailed(verb: "kill", exitStatus: 3, detail: "something broke")),
        // Seen in critest's attach spec: a Kill racing the container's delete (runsc 2024).
        ("state-gone", .notFound(verb: "kill", detail: "loading container: open /run/w/k8s.io/p1/c1_sandbox:p1.state: no such file or directory")),
    ])
    func classifiesFailures(mode: String, expected: RunscError) async throws {
        let fake = try FakeRunsc(mode: mode)
        defer { fake.finish() }
        await #expect(throws: expected) {
            try await withTimeout(.seconds(10)) { try await fake.runsc.kill("c1", signal: 9) }
        }
    }

    /// runsc's network=sandbox failing on Linux 6.10+ (google/gvisor#10704): every pod fails,
    /// and the error says what to change.
    @Test func aNetworkSandboxFailureSaysWhatToChange() async throws {
        let fake = try FakeRunsc(mode: "root-netns")
        defer { fake.finish() }
        do {
            try await withTimeout(.seconds(10)) { try await fake.runsc.kill("c1", signal: 9) }
            Issue.record("no error")
        } catch let error as RunscError {
            guard case .commandFailed(_, 128, let detail) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(detail.hasPrefix("starting container: setting up network"))
            #expect(detail.contains("google/gvisor#10704"))
            #expect(detail.contains(#"set network = "host" or "none" under [runsc_config]"#))
        }
    }

    @Test func garbageStateIsInvalidOutput() async throws {
        let fake = try FakeRunsc(mode: "garbage")
        defer { fake.finish() }
        do {
            _ = try await withTimeout(.seconds(10)) { try await fake.runsc.state("c1") }
            Issue.record("decoded garbage")
        } catch let error as RunscError {
            guard case .invalidOutput(let verb, _) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(verb == "state")
        }
    }

    @Test func missingBinaryIsASpawnFailureNamingIt() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let runsc = Runsc(configuration: RunscConfiguration(binary: "/nonexistent/runsc", root: dir.path, scratchDirectory: dir.path), supervisor: supervisor)
        do {
            try await withTimeout(.seconds(10)) { try await runsc.kill("c1", signal: 9) }
            Issue.record("ran a missing binary")
        } catch let error as RunscError {
            guard case .spawnFailed(_, let detail) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(detail.contains("/nonexistent/runsc"))
        }
    }

    @Test func stateFilesAreRemovedByContainerOrBySandbox() throws {
        let fake = try FakeRunsc()
        defer { fake.finish() }
        let root = fake.dir.file("root")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let names = [
            "pod_sandbox:pod.state", "pod_sandbox:pod.lock", "app_sandbox:pod.lock",  // pod "pod"
            "pod_sandbox:pod.state.tmp-4242",  // a state write a killed runsc call left half done
            "other_sandbox:other.state", "other_sandbox:other.lock", "notes.txt",  // not its
            "other_sandbox:other.state.tmp-4242", "pod_sandbox:pod2.state",
            "runsc-pod.sock", "runsc-other.sock", "runsc-pod2.sock",  // control sockets (runsc 2024)
        ]
        for name in names { FileManager.default.createFile(atPath: root + "/" + name, contents: Data()) }
        #expect(fake.runsc.hasState("app"))
        #expect(fake.runsc.removeState("app") == [root + "/app_sandbox:pod.lock"])
        #expect(!fake.runsc.hasState("app"))
        #expect(Set(fake.runsc.removeSandboxState("pod")) == [
            root + "/pod_sandbox:pod.state", root + "/pod_sandbox:pod.lock", root + "/pod_sandbox:pod.state.tmp-4242",
            root + "/runsc-pod.sock",
        ])
        #expect(fake.runsc.hasState("other"))
        #expect(Set(fake.runsc.removeState("other")) == [
            root + "/other_sandbox:other.state", root + "/other_sandbox:other.lock", root + "/runsc-other.sock",
        ])
        let left = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        #expect(left == ["notes.txt", "other_sandbox:other.state.tmp-4242", "pod_sandbox:pod2.state", "runsc-pod2.sock"])
        // Stale locks: only once the sandbox's own state is gone, and only those without state.
        for name in ["pod2_sandbox:pod2.state", "app_sandbox:pod2.lock", "side_sandbox:pod2.lock", "side_sandbox:pod2.state"] {
            FileManager.default.createFile(atPath: root + "/" + name, contents: Data())
        }
        #expect(fake.runsc.removeStaleSandboxLocks("pod2") == [], "the sandbox's state is there: nothing is stale")
        try FileManager.default.removeItem(atPath: root + "/pod2_sandbox:pod2.state")
        #expect(fake.runsc.removeStaleSandboxLocks("pod2") == [root + "/app_sandbox:pod2.lock", root + "/runsc-pod2.sock"])
        #expect(FileManager.default.fileExists(atPath: root + "/side_sandbox:pod2.lock"), "a lock beside its state stays")
    }
}
