import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// The `start` and `delete` subcommands run the way containerd runs them (shim-contract §1.2,
/// §1.3): combined output read to EOF, cwd = bundle, options Any on stdin.
@Suite(.serialized)
struct StartDeleteTests {
    struct Run {
        var status: Int32
        var stdout: Data
        var stderr: String
        var elapsed: Duration
    }

    /// Runs the shim with separate stdout/stderr pipes, read to EOF as containerd does: if the
    /// server child held them, this would not return until the server exits.
    /// `launcher` (e.g. prlimit and its flags) execs the shim.
    static func shim(
        _ arguments: [String], cwd: String, stdin: Data = Data(), environment: [String: String] = [:], launcher: [String] = []
    ) async throws -> Run {
        let process = Process()
        let command = launcher + [ShimHarness.buildDirectory + "/containerd-shim-warden-v2"] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        let started = ContinuousClock.now
        try process.run()
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
        return try await withTimeout(.seconds(10), "shim \(arguments.last ?? "")") {
            let stdout = await Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
            let stderr = await Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
            process.waitUntilExit()
            return Run(
                status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self),
                elapsed: ContinuousClock.now - started)
        }
    }

    /// warden.toml in `dir` for fake-runsc, with its runsc root and metrics dir inside `dir`.
    static func writeFakeConfig(in dir: TempDir) throws {
        try "runsc = \"\(ShimHarness.buildDirectory)/fake-runsc\"\nroot = \"\(dir.file("runsc"))\"\n[metrics]\ndir = \"\(dir.file("metrics"))\"\n"
            .write(toFile: dir.file("warden.toml"), atomically: true, encoding: .utf8)
    }

    static func bundle(in dir: TempDir, id: String, annotations: [String: String]) throws -> String {
        let bundle = dir.file("state/io.containerd.runtime.v2.task/ns1/\(id)")
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        let spec = try JSONSerialization.data(withJSONObject: ["ociVersion": "1.0.2", "process": ["args": ["sh"]], "annotations": annotations])
        try spec.write(to: URL(fileURLWithPath: bundle + "/config.json"))
        return bundle
    }

    static func options(configPath: String) throws -> Data {
        var options = Runtimeoptions_V1_Options()
        options.configPath = configPath
        var any = Google_Protobuf_Any()
        any.typeURL = "runtimeoptions.v1.Options"
        any.value = try options.serializedData()
        return try any.serializedData()
    }

    @Test func startPrintsOnlyTheAddressGroupsAPodAndDeleteCleansUp() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try Self.writeFakeConfig(in: dir)
        let stdin = try Self.options(configPath: dir.file("warden.toml"))
        let flags = ["-namespace", "ns1", "-address", dir.file("c.sock"), "-publish-binary", "/usr/bin/containerd"]
        let pod = ["io.kubernetes.cri.sandbox-id": "podA"]
        let first = try Self.bundle(in: dir, id: "c1", annotations: pod)
        let second = try Self.bundle(in: dir, id: "c2", annotations: pod)

        // Started under a soft descriptor limit of 256 (the server raises it to the hard one).
        let started = try await Self.shim(
            flags + ["-id", "c1", "start"], cwd: first, stdin: stdin, launcher: ["/usr/bin/prlimit", "--nofile=256:"])
        #expect(started.status == 0, "start: \(started.stderr)")
        #expect(started.stderr.isEmpty, "start wrote to stderr: \(started.stderr)")
        #expect(started.elapsed < .seconds(3), "start's pipes held open: \(started.elapsed)")
        let address = String(decoding: started.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(address.hasPrefix("unix://\(dir.file("state/s"))/"), "address: \(address)")
        #expect(try String(contentsOfFile: first + "/address", encoding: .utf8) == address)
        let serverPid = Int32(try String(contentsOfFile: first + "/shim.pid", encoding: .utf8)) ?? 0
        #expect(serverPid > 0 && processExists(serverPid))
        defer { if processExists(serverPid) { kill(serverPid, SIGKILL) } }

        // The second container of the pod gets the same shim.
        let joined = try await Self.shim(flags + ["-id", "c2", "start"], cwd: second, stdin: stdin)
        #expect(joined.status == 0 && joined.stderr.isEmpty)
        #expect(String(decoding: joined.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == address)
        let images = livingProcesses(mentioning: dir.file("c.sock"))
        #expect(images.filter { processName($0) != "warden-spawner" }.count == 1, "one server for the pod: \(images)")
        #expect(images.filter { processName($0) == "warden-spawner" }.count == 1, "one spawn helper for it: \(images)")

        // It serves the task API; Shutdown with no container makes it exit and remove its socket.
        let socketPath = String(address.dropFirst("unix://".count))
        let client = try TTRPCClient.connect(path: socketPath)
        let connected: Containerd_Task_V2_ConnectResponse = try await client.call(
            service: "containerd.task.v3.Task", method: "Connect", request: Containerd_Task_V2_ConnectRequest(), timeout: .seconds(5))
        #expect(connected.shimPid == UInt32(serverPid))
        // Serving, so set up: it raised the soft descriptor limit start had (256) to the hard one.
        let limits = try String(contentsOfFile: "/proc/\(serverPid)/limits", encoding: .utf8)
        let openFiles = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?.split(separator: " ") ?? []
        #expect(openFiles.count >= 5 && openFiles[3] == openFiles[4], "soft raised to hard: \(openFiles)")
        var unknown = Containerd_Task_V2_StateRequest()
        unknown.id = "nope"
        await #expect(throws: TTRPCStatus.self) {
            let _: Containerd_Task_V2_StateResponse = try await client.call(
                service: "containerd.task.v2.Task", method: "State", request: unknown, timeout: .seconds(5))
        }
        let _: Google_Protobuf_Empty = try await client.call(
            service: "containerd.task.v2.Task", method: "Shutdown", request: Containerd_Task_V2_ShutdownRequest(), timeout: .seconds(5))
        client.close()
        try await withTimeout(.seconds(5), "shim exit after Shutdown") {
            while processExists(serverPid) && !isZombie(serverPid) { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(!FileManager.default.fileExists(atPath: socketPath), "socket removed at exit")
        try await withTimeout(.seconds(5), "the spawn helper's exit after its shim's") {
            while livingProcesses(mentioning: dir.file("c.sock")).contains(where: { processName($0) == "warden-spawner" }) {
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        // delete: bounded, DeleteResponse with 137 on stdout.
        let deleted = try await Self.shim(flags + ["-id", "c1", "-bundle", first, "delete"], cwd: first)
        #expect(deleted.status == 0, "delete: \(deleted.stderr)")
        let response = try Containerd_Task_V2_DeleteResponse(serializedBytes: [UInt8](deleted.stdout))
        #expect(response.exitStatus == 137 && response.hasExitedAt)
        #expect(livingProcesses(mentioning: dir.path).isEmpty)
    }

    /// containerd's cleanup after a shim died: `delete` removes the dead shim's socket.
    @Test func deleteRemovesADeadShimsSocket() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try Self.writeFakeConfig(in: dir)
        let flags = ["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1"]
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        let started = try await Self.shim(flags + ["start"], cwd: bundle, stdin: try Self.options(configPath: dir.file("warden.toml")))
        #expect(started.status == 0)
        let socketPath = String(String(decoding: started.stdout, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines).dropFirst("unix://".count))
        let serverPid = Int32(try String(contentsOfFile: bundle + "/shim.pid", encoding: .utf8)) ?? 0
        #expect(serverPid > 0)
        kill(serverPid, SIGKILL)
        try await withTimeout(.seconds(5), "server death") {
            while processExists(serverPid) && !isZombie(serverPid) { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(FileManager.default.fileExists(atPath: socketPath), "a SIGKILLed server leaves its socket")
        let deleted = try await Self.shim(flags + ["-bundle", bundle, "delete"], cwd: bundle)
        #expect(deleted.status == 0, "delete: \(deleted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: socketPath), "delete removed the dead shim's socket")
        #expect(livingProcesses(mentioning: dir.path).isEmpty)
    }

    /// A pod started by a Warden before per-pod runsc roots keeps its runsc state directly
    /// under the configured root: `delete` after its shim died still finds and removes it,
    /// and leaves no per-pod root behind.
    @Test func deleteFindsThePreUpgradeRunscRoot() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        let root = dir.file("runsc")
        try "runsc = \"\(ShimHarness.buildDirectory)/fake-runsc\"\nroot = \"\(root)\"\n[metrics]\ndir = \"\(dir.file("metrics"))\"\n"
            .write(toFile: dir.file("warden.toml"), atomically: true, encoding: .utf8)
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        try dir.file("warden.toml").write(toFile: bundle + "/warden-config-path", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let legacyState = root + "/c1_sandbox:c1.state"
        try #"{"id":"c1","bundle":"\#(bundle)","status":"stopped","sandboxPid":0,"goferPid":0,"sandboxID":"c1"}"#
            .write(toFile: legacyState, atomically: true, encoding: .utf8)
        let deleted = try await Self.shim(
            ["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1", "-bundle", bundle, "delete"], cwd: bundle)
        #expect(deleted.status == 0, "delete: \(deleted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: legacyState), "the pre-upgrade runsc state was deleted")
        let left = try FileManager.default.contentsOfDirectory(atPath: root)
        #expect(left.isEmpty, "left under the runsc root: \(left)")
    }

    /// containerd 2.0-2.2 give a shim-sandboxed handler no options: the config path then comes
    /// from WARDEN_CONFIG_PATH (a runtime_type wrapper), checked by `start` like a ConfigPath.
    @Test func startTakesTheConfigPathFromTheEnvironmentWhenContainerdGivesNone() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try "[deadlines]\nkill_grace = \"soon\"\n".write(toFile: dir.file("env.toml"), atomically: true, encoding: .utf8)
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        let run = try await Self.shim(
            ["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1", "start"], cwd: bundle,
            environment: ["WARDEN_CONFIG_PATH": dir.file("env.toml")])
        #expect(run.status != 0)
        #expect(run.stderr.contains("env.toml") && run.stderr.contains("kill_grace"), "the environment's file was read: \(run.stderr)")
    }

    @Test func startRefusesABadConfigNamingTheKey() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try "runsc = \"/usr/bin/runsc\"\n[deadlines]\nkill_grace = \"soon\"\n".write(toFile: dir.file("bad.toml"), atomically: true, encoding: .utf8)
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        let run = try await Self.shim(
            ["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1", "start"], cwd: bundle,
            stdin: try Self.options(configPath: dir.file("bad.toml")))
        #expect(run.status != 0)
        #expect(run.stderr.contains("bad.toml") && run.stderr.contains("kill_grace"), "error names file and key: \(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(livingProcesses(mentioning: dir.path).isEmpty, "no server started")
    }

    /// containerd 2.3's bootstrap request: one BootstrapParams for `id` in `namespace`,
    /// with the runtime options as an extension.
    static func bootstrapParams(id: String, namespace: String, socketDir: String?, configPath: String) throws -> Data {
        var params = Containerd_Runtime_Bootstrap_V1_BootstrapParams()
        params.instanceID = id
        params.namespace = namespace
        params.containerdVersion = "2.3.4"
        params.containerdTtrpcAddress = "unix:///nowhere/containerd.sock.ttrpc"
        params.containerdGrpcAddress = "unix:///nowhere/containerd.sock"
        params.containerdBinary = "/usr/bin/containerd"
        if let socketDir { params.socketDir = socketDir }
        var extensionValue = Containerd_Runtime_Bootstrap_V1_Extension()
        extensionValue.value = try Google_Protobuf_Any(serializedBytes: [UInt8](try options(configPath: configPath)))
        params.extensions = [extensionValue]
        return try params.serializedData()
    }

    /// containerd 2.3+: BootstrapParams on stdin is answered with a BootstrapResult (exactly the
    /// message, as containerd parses it before any text fallback), the socket in the params'
    /// socket_dir and the config from the options extension.
    @Test func startAnswersBootstrapParamsWithABootstrapResult() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try Self.writeFakeConfig(in: dir)
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        let stdin = try Self.bootstrapParams(id: "c1", namespace: "ns1", socketDir: dir.file("sockets"), configPath: dir.file("warden.toml"))
        let started = try await Self.shim(["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1", "start"], cwd: bundle, stdin: stdin)
        #expect(started.status == 0, "start: \(started.stderr)")
        #expect(started.stderr.isEmpty)
        let result = try Containerd_Runtime_Bootstrap_V1_BootstrapResult(serializedBytes: [UInt8](started.stdout))
        #expect(result.version == 2 && result.protocol == "ttrpc", "\(result)")
        #expect(result.address.hasPrefix("unix://\(dir.file("sockets"))/"), "socket_dir honoured: \(result.address)")
        #expect(try String(contentsOfFile: bundle + "/warden-config-path", encoding: .utf8) == dir.file("warden.toml"))
        let serverPid = Int32(try String(contentsOfFile: bundle + "/shim.pid", encoding: .utf8)) ?? 0
        defer { if processExists(serverPid) { kill(serverPid, SIGKILL) } }
        let socketPath = String(result.address.dropFirst("unix://".count))
        let client = try TTRPCClient.connect(path: socketPath)
        let _: Google_Protobuf_Empty = try await client.call(
            service: "containerd.task.v2.Task", method: "Shutdown", request: Containerd_Task_V2_ShutdownRequest(), timeout: .seconds(5))
        client.close()
        try await withTimeout(.seconds(5), "shim exit after Shutdown") {
            while processExists(serverPid) && !isZombie(serverPid) { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(!FileManager.default.fileExists(atPath: socketPath), "socket removed at exit")
        try await withTimeout(.seconds(5), "nothing left") {
            while !livingProcesses(mentioning: dir.path).isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    /// Hand-made stdin containerd would never send, or sends for another task: refused with a
    /// message naming what is wrong, no output, no server, no socket, nothing written.
    @Test func startRefusesBootstrapParamsItCannotUse() async throws {
        guard ShimHarness.available(.fake) else { return }
        let dir = try TempDir("wds")
        defer { dir.remove() }
        try Self.writeFakeConfig(in: dir)
        let bundle = try Self.bundle(in: dir, id: "c1", annotations: [:])
        let sockets = dir.file("sockets")
        let good = try Self.bootstrapParams(id: "c1", namespace: "ns1", socketDir: sockets, configPath: dir.file("warden.toml"))
        let cases: [(String, Data, String)] = [
            ("another id", try Self.bootstrapParams(id: "c2", namespace: "ns1", socketDir: sockets, configPath: dir.file("warden.toml")), "\"c2\""),
            ("another namespace", try Self.bootstrapParams(id: "c1", namespace: "ns2", socketDir: sockets, configPath: dir.file("warden.toml")), "\"ns2\""),
            ("truncated", good.prefix(good.count - 7), "neither a containerd BootstrapParams nor runtime options"),
            ("garbage", Data([0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x13]), "neither a containerd BootstrapParams nor runtime options"),
        ]
        for (name, stdin, complaint) in cases {
            let run = try await Self.shim(["-namespace", "ns1", "-address", dir.file("c.sock"), "-id", "c1", "start"], cwd: bundle, stdin: stdin)
            #expect(run.status != 0, "\(name): started")
            #expect(run.stderr.contains(complaint), "\(name): \(run.stderr)")
            #expect(run.stdout.isEmpty, "\(name): printed \(run.stdout.count) bytes")
            #expect(!FileManager.default.fileExists(atPath: sockets), "\(name): made the socket dir")
            #expect(!FileManager.default.fileExists(atPath: bundle + "/shim.pid"), "\(name): wrote shim.pid")
            #expect(livingProcesses(mentioning: dir.path).isEmpty, "\(name): a server started")
        }
    }
}
