import Foundation
import LinuxSys
import Runsc
import Synchronization
import Testing
import WardenTestSupport

@testable import ShimCore

/// ChannelRuntime: which calls go to the control server, the probe, the fallback, and that a
/// hung server's calls end at the CLI's deadline. The CLI is InMemoryRuntime (its calls are
/// recorded), the server a scripted one.
@Suite(.timeLimit(.minutes(1)))
struct ChannelRuntimeTests {
    final class Paths: Sendable {
        let seen = Mutex<[String]>([])
        var all: [String] { seen.withLock { $0 } }
    }

    /// A runsc root whose state for `container` (of `sandbox`) records `socket`.
    static func root(_ dir: TempDir, container: String, sandbox: String, socket: String?) throws -> String {
        let root = dir.file("root")
        try Directories.make(root)
        let recorded = socket.map { #"{"controlSocketPath":"\#($0)"}"# } ?? "{}"
        for id in Set([container, sandbox]) {
            try Files.write("\(root)/\(id)_sandbox:\(sandbox).state", #"{"id":"\#(id)","sandbox":\#(recorded)}"#)
        }
        return root
    }

    /// A runsc root recording `socket` for `container` of `sandbox`, an event loop, and the
    /// runtime over them with InMemoryRuntime as its CLI; `close()` stops the loop and removes
    /// the root.
    final class Fixture {
        let dir: TempDir
        let loop: EventLoop
        let paths = Paths()
        let runtime: ChannelRuntime
        let cli: InMemoryRuntime

        init(container: String = "app", sandbox: String = "pod", socket: String?, callTimeout: Duration = .seconds(2)) throws {
            dir = try TempDir()
            loop = try EventLoop(name: "channel-test")
            cli = InMemoryRuntime(root: try ChannelRuntimeTests.root(dir, container: container, sandbox: sandbox, socket: socket), supervision: InMemorySupervision())
            let paths = paths
            runtime = ChannelRuntime(cli: cli, loop: loop, callTimeout: callTimeout, onPath: { sandbox, path in
                paths.seen.withLock { $0.append("\(sandbox) \(path.name)") }
            })
        }

        func close() {
            loop.stop()
            dir.remove()
        }
    }

    /// The first call is the probe, answered well; every later one gets `then`.
    static func probeAnsweredThen(_ then: ScriptedServer.Reply) throws -> ScriptedServer {
        let probed = Mutex(false)
        return try ScriptedServer { _ in
            let first = probed.withLock { was in defer { was = true }; return !was }
            return first ? .answer(#"{"success":true,"err":"","result":[]}"#) : then
        }
    }

    @Test func aProbedSandboxsWaitAndKillGoToItsServerAndNoCLICallIsMade() async throws {
        let methods = Mutex<[String]>([])
        let server = try ScriptedServer { request in
            let method = (try? JSONSerialization.jsonObject(with: Data(request.utf8)) as? [String: Any])?["method"] as? String ?? "?"
            methods.withLock { $0.append(method) }
            switch method {
            case "containerManager.Processes": return .answer(#"{"success":true,"err":"","result":null}"#)
            case "containerManager.Wait": return .answer(#"{"success":true,"err":"","result":256}"#)
            default: return .answer(#"{"success":true,"err":"","result":{}}"#)
            }
        }
        defer { server.stop() }
        let f = try Fixture(socket: server.path)
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        await runtime.sandboxStarted("pod")
        #expect(paths.all == ["pod control"])
        #expect(try await runtime.wait("app", timeout: nil) == 1)
        try await runtime.kill("app", signal: 9, all: true, pid: nil, timeout: nil)
        #expect(methods.withLock { $0 } == ["containerManager.Processes", "containerManager.Wait", "containerManager.Signal"])
        #expect(cli.calls.isEmpty, "CLI calls: \(cli.calls)")
        #expect(paths.all == ["pod control"], "probed once per sandbox")
    }

    @Test func noRecordedSocketOrARefusedProbeMeansTheCLI() async throws {
        let f = try Fixture(socket: nil)
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        await #expect(throws: RunscError.self) { try await runtime.kill("app", signal: 9, all: false, pid: nil, timeout: nil) }
        #expect(cli.calls == ["kill app"])
        #expect(paths.all == ["pod cli"])

        let refusing = try ScriptedServer { _ in .answer(#"{"success":false,"err":"unknown method","result":null}"#) }
        defer { refusing.stop() }
        let other = try Fixture(container: "c", sandbox: "s", socket: refusing.path)
        defer { other.close() }
        await other.runtime.sandboxStarted("s")
        _ = try? await other.runtime.ps("c")
        #expect(other.cli.calls == ["ps c"])
        #expect(other.paths.all == ["s cli"])
    }

    @Test func anAnswerThatIsNotURPCSendsTheCallAndTheSandboxToTheCLI() async throws {
        let server = try Self.probeAnsweredThen(.answer("garbage"))
        defer { server.stop() }
        let f = try Fixture(socket: server.path)
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        await runtime.sandboxStarted("pod")
        await #expect(throws: RunscError.self) { try await runtime.kill("app", signal: 15, all: false, pid: nil, timeout: nil) }
        #expect(cli.calls == ["kill app"], "the call made again through the CLI")
        _ = try? await runtime.ps("app")
        #expect(cli.calls == ["kill app", "ps app"], "and every call after it")
        #expect(paths.all == ["pod control", "pod cli"])
        #expect(server.connections == 2)
    }

    @Test func aRefusalIsRunscsAnswerAndAHungServerIsATimeoutAtTheDeadline() async throws {
        let server = try Self.probeAnsweredThen(.hang)
        defer { server.stop() }
        let f = try Fixture(socket: server.path, callTimeout: .milliseconds(300))
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        await runtime.sandboxStarted("pod")
        let began = ContinuousClock.now
        await #expect(throws: RunscError.timedOut(verb: "kill", after: .milliseconds(300))) {
            try await runtime.kill("app", signal: 9, all: true, pid: nil, timeout: nil)
        }
        #expect(ContinuousClock.now - began < TestBounds.cutShort(.milliseconds(300)))
        #expect(cli.calls.isEmpty, "a hung server is not a reason to try the CLI: \(cli.calls)")
        #expect(paths.all == ["pod control"])
    }

    @Test func aServerErrorIsClassifiedAsRunscsText() async throws {
        let server = try ScriptedServer { request in
            request.contains("Processes") && request.contains(#""pod""#)
                ? .answer(#"{"success":true,"err":"","result":[]}"#)
                : .answer(#"{"success":false,"err":"container \"gone\" not found","result":null}"#)
        }
        defer { server.stop() }
        let f = try Fixture(container: "gone", socket: server.path)
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        await #expect(throws: RunscError.notFound(verb: "kill", detail: #"container "gone" not found"#)) {
            try await runtime.kill("gone", signal: 9, all: false, pid: nil, timeout: nil)
        }
        #expect(cli.calls.isEmpty)
    }
}

/// The sentry's stats as containerd's cgroups v1 and v2 metrics (v2 on a unified-only host).
@Suite struct CgroupMetricsTests {
    static let stats = try! JSONDecoder().decode(RunscStats.self, from: Data(#"""
        {"cpu":{"usage":{"total":2500000000,"kernel":500000000,"user":2000000000}},
         "memory":{"usage":{"usage":54525952,"limit":104857600,"max":60000000},"cache":4096},
         "pids":{"current":3,"limit":100}}
        """#.utf8))

    @Test func v1KeepsNanosecondsAndTheMemoryEntry() {
        let metrics = CgroupMetrics.v1(Self.stats)
        #expect(metrics.cpu.usage.total == 2_500_000_000 && metrics.cpu.usage.user == 2_000_000_000)
        #expect(metrics.memory.usage.usage == 54_525_952 && metrics.memory.usage.limit == 104_857_600)
        #expect(metrics.pids.current == 3)
    }

    @Test func v2HasMicrosecondsAndTheUsageAndLimit() {
        let metrics = CgroupMetrics.v2(Self.stats)
        #expect(metrics.cpu.usageUsec == 2_500_000 && metrics.cpu.userUsec == 2_000_000 && metrics.cpu.systemUsec == 500_000)
        #expect(metrics.memory.usage == 54_525_952 && metrics.memory.usageLimit == 104_857_600 && metrics.memory.file == 4096)
        #expect(metrics.pids.current == 3 && metrics.pids.limit == 100)
    }
}

extension ChannelRuntimeTests {
    /// A server that hangs from the start: the probe takes the call's bound, and the call,
    /// sent to the CLI (hung too here), gets only what is left of it, not a bound of its own.
    @Test func aProbeInFlightIsWaitedForWithinTheCallsBound() async throws {
        let server = try ScriptedServer { _ in .hang }
        defer { server.stop() }
        let f = try Fixture(socket: server.path, callTimeout: .milliseconds(300))
        defer { f.close() }
        let (runtime, cli, paths) = (f.runtime, f.cli, f.paths)
        cli.hang("kill")
        Task { await runtime.sandboxStarted("pod") }
        try await Task.sleep(for: .milliseconds(20))
        let began = ContinuousClock.now
        await #expect(throws: RunscError.self) { try await runtime.kill("app", signal: 9, all: true, pid: nil, timeout: nil) }
        #expect(ContinuousClock.now - began < TestBounds.cutShort(.milliseconds(300)), "took \(ContinuousClock.now - began)")
        #expect(paths.all == ["pod cli"])
        #expect(cli.calls == ["kill app"])
    }
}
