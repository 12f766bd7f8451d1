import Foundation
import Synchronization
import LinuxSys
import Testing
import WardenTestSupport

/// The runsc under the shim: Debian's real one, or fake-runsc (same CLI and process model).
enum RuntimeKind: String, CustomStringConvertible, CaseIterable, Sendable {
    case real, fake
    var description: String { rawValue }
}

/// A private containerd 1.6 with Warden on its PATH, the test image imported, and a
/// warden.toml for the chosen runsc. `ctr` drives it; `finish()` stops containerd and runs the
/// leak audit. Its containerd namespace is named after its temp dir, so the cgroups runsc makes
/// (`/<namespace>/<id>`, ctr's default path) are this test's alone.
final class ShimHarness: Sendable {
    /// The containerd serving now (`restartContainerd()` replaces it).
    var containerd: PrivateContainerd { life.withLock { $0.containerd } }
    private struct Life {
        var containerd: PrivateContainerd
        /// What `abandon()` undoes besides containerd and the processes (a frozen cgroup, a
        /// process the test started), newest first.
        var cleanups: [@Sendable () async -> Void] = []
    }
    private let life: Mutex<Life>
    /// How containerd was started, for a restart.
    private let environment: [String: String]
    private let launcher: [String]
    let runtime: RuntimeKind
    let configPath: String
    let runscRoot: String
    static let image = "warden.test/busybox:latest"
    var namespace: String { URL(fileURLWithPath: containerd.dir.path).lastPathComponent }
    /// Where the shims write their metrics (`[metrics] dir`).
    var metricsDirectory: String { containerd.dir.file("metrics") }

    static var buildDirectory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }

    static var imageTar: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tests/fixtures/bin/busybox-image.tar").path
    }

    /// Whether the peers exist; under WARDEN_INTEROP=1 (scripts/test.sh) a missing one fails.
    static func available(_ runtime: RuntimeKind, also extra: [String] = []) -> Bool {
        var needed = [ContainerdUnderTest.containerd, ContainerdUnderTest.ctr, imageTar, buildDirectory + "/containerd-shim-warden-v2"] + extra
        needed.append(runtime == .real ? RunscUnderTest.binary : buildDirectory + "/fake-runsc")
        let missing = needed.filter { !FileManager.default.fileExists(atPath: $0) }
        if missing.isEmpty { return true }
        if ProcessInfo.processInfo.environment["WARDEN_INTEROP"] == "1" {
            Issue.record("integration peers missing: \(missing)")
        }
        return false
    }

    private init(
        containerd: PrivateContainerd, environment: [String: String], launcher: [String], runtime: RuntimeKind,
        configPath: String, runscRoot: String
    ) {
        self.life = Mutex(Life(containerd: containerd))
        self.environment = environment
        self.launcher = launcher
        self.runtime = runtime
        self.configPath = configPath
        self.runscRoot = runscRoot
    }

    /// `extraConfig` is appended to warden.toml (e.g. a `[seccomp]` table); `shimEnvironment`
    /// reaches the shims through containerd's environment.
    static func start(
        _ runtime: RuntimeKind, deadlines: String = "", extraConfig: String = "", runscConfig: String = "",
        shimEnvironment: [String: String] = [:], launcher: [String] = [], dir: TempDir? = nil, controlChannel: String = "auto"
    ) async throws -> ShimHarness {
        let dir = try dir ?? TempDir("wdi")
        let runscRoot = dir.file("runsc")
        let binary = runtime == .real ? RunscUnderTest.binary : buildDirectory + "/fake-runsc"
        let config = """
            runsc = "\(binary)"
            root = "\(runscRoot)"
            log_level = "debug"
            control_channel = "\(controlChannel)"
            [deadlines]
            \(deadlines)
            [runsc_config]
            network = "none"
            \(runscConfig)
            [metrics]
            dir = "\(dir.file("metrics"))"
            \(extraConfig)
            """
        let configPath = dir.file("warden.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        // The shim first; then the containerd under test's own runc shim.
        let path = buildDirectory + ":" + ContainerdUnderTest.directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        // The shim server's stderr (a crash report) goes to a file in the test dir.
        let environment = ["PATH": path, "WARDEN_SHIM_STDERR": dir.file("shim.stderr")].merging(shimEnvironment) { $1 }
        let containerd = try await PrivateContainerd.start(environment: environment, launcher: launcher, in: dir)
        let harness = ShimHarness(
            containerd: containerd, environment: environment, launcher: launcher, runtime: runtime, configPath: configPath,
            runscRoot: runscRoot)
        let imported = try await harness.ctr(["images", "import", imageTar], timeout: .seconds(60))
        if imported.status != 0 {
            await harness.containerd.stop()
            throw HarnessError("image import failed: \(imported.output)")
        }
        return harness
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    typealias Result = CommandResult

    var runtimeFlags: [String] {
        ["--runtime", "io.containerd.warden.v2", "--runtime-config-path", configPath]
    }

    /// Runs `ctr -a <socket> <arguments>`, optionally with stdin text, within `timeout`.
    func ctr(_ arguments: [String], stdin: String? = nil, timeout: Duration = .seconds(60)) async throws -> Result {
        Self.withoutDeprecations(
            try await runCommand(
                ContainerdUnderTest.ctr, ["-a", containerd.address] + arguments, stdin: stdin,
                environment: ["CONTAINERD_NAMESPACE": namespace], timeout: timeout))
    }

    /// ctr 2.3 warns on every call that cgroup v1 is deprecated (these machines are cgroup v1):
    /// not output of the command.
    static func withoutDeprecations(_ result: Result) -> Result {
        var result = result
        result.output = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("msg=\"DEPRECATION: The support for cgroup v1") }.joined(separator: "\n")
        return result
    }

    /// `ctr` with a terminal on its side (`script` gives it a pty), for `-t`.
    func ctrWithTerminal(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> Result {
        let command = ([ContainerdUnderTest.ctr, "-a", containerd.address] + arguments).map(Self.shellQuoted).joined(separator: " ")
        return Self.withoutDeprecations(
            try await runCommand(
                "/usr/bin/script", ["-qec", command, "/dev/null"], stdin: nil, environment: ["CONTAINERD_NAMESPACE": namespace],
                timeout: timeout))
    }

    static func shellQuoted(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The task's pid as `ctr task ls` shows it (the runsc-sandbox pid for a sandbox root).
    func taskPid(_ id: String) async throws -> Int32? {
        let listed = try await ctr(["task", "ls"])
        for line in listed.output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2 && fields[0] == id { return Int32(fields[1]) }
        }
        return nil
    }

    /// Polls `ctr task ls` until `id` shows `status` (RUNNING, STOPPED, PAUSED).
    func waitForTask(_ id: String, status: String, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let listed = try await ctr(["task", "ls"])
            if listed.output.split(separator: "\n").contains(where: { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return fields.first.map(String.init) == id && fields.last.map(String.init) == status
            }) {
                return
            }
            if ContinuousClock.now > deadline {
                throw TestTimedOut(limit: timeout, what: "task \(id) reaching \(status); ctr task ls:\n\(listed.output)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Live shim servers of this harness (their command line carries containerd's address),
    /// without their spawn helpers (same command line, named warden-spawner).
    func shimProcesses() -> [String] {
        shimImages().filter { processName($0) != "warden-spawner" }
    }

    /// Each shim's spawn helper (SpawnHelper): there while its shim serves, gone with it.
    func spawnHelpers() -> [String] {
        shimImages().filter { processName($0) == "warden-spawner" }
    }

    private func shimImages() -> [String] {
        livingProcesses(mentioning: containerd.address).filter { $0.contains("containerd-shim-warden-v2") }
    }

    /// Stops containerd and audits: no shim, sandbox, gofer or fake process of this test left,
    /// no mount, no shim socket, no runsc state, no shim scratch directory.
    func finish() async throws {
        // Shims exit on their own after their last container's Shutdown; give them a moment.
        let deadline = ContinuousClock.now + .seconds(5)
        while !shimImages().isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(spawnHelpers().isEmpty, "spawn helpers outlived their shims: \(spawnHelpers())")
        await containerd.stop()
        let sockets = (try? FileManager.default.contentsOfDirectory(atPath: containerd.dir.file("state/s"))) ?? []
        // fake-runsc's log of what it was asked, kept where a test put a faults file, is the test's.
        let runscState = ((try? FileManager.default.contentsOfDirectory(atPath: runscRoot)) ?? []).filter { $0 != "fault-log" }
        let metricsFiles = (try? FileManager.default.contentsOfDirectory(atPath: metricsDirectory)) ?? []
        #expect(metricsFiles.isEmpty, "metrics files of exited shims left: \(metricsFiles)")
        try containerd.auditNothingLeft(keep: true)
        #expect(sockets.isEmpty, "shim sockets left: \(sockets)")
        #expect(runscState.isEmpty, "runsc root not empty: \(runscState)")
        let cgroups = leftCgroups()
        #expect(cgroups.isEmpty, "container cgroups left: \(cgroups)")
        removeCgroups()
        if sockets.isEmpty && runscState.isEmpty { containerd.dir.remove() }
    }

    /// A test's whole life on one harness: start, `body`, then the leak audit of `finish()`,
    /// `body` and the audit bounded by `limit`. Whatever ends it early (a failed step, a
    /// thrown expectation, the limit) runs `abandon()` here, outside the timed part: a test
    /// that times out still stops its containerd and kills its shims and sandboxes by PID.
    static func run(
        _ runtime: RuntimeKind, limit: Duration, _ what: String, deadlines: String = "", extraConfig: String = "",
        runscConfig: String = "", shimEnvironment: [String: String] = [:], launcher: [String] = [], dir: TempDir? = nil,
        controlChannel: String = "auto", _ body: @escaping @Sendable (ShimHarness) async throws -> Void
    ) async throws {
        let h = try await withTimeout(.seconds(60), "\(what): harness start") {
            try await start(
                runtime, deadlines: deadlines, extraConfig: extraConfig, runscConfig: runscConfig, shimEnvironment: shimEnvironment,
                launcher: launcher, dir: dir, controlChannel: controlChannel)
        }
        do {
            try await withTimeout(limit, what) {
                try await body(h)
                try await h.finish()
            }
        } catch {
            await h.abandon()
            throw error
        }
    }

    /// Stops containerd and starts another on the same directories (its state, the shims it
    /// left running): what a node's containerd restart looks like to the shims.
    func restartContainerd() async throws {
        let old = containerd
        await old.stop()
        let started = try await PrivateContainerd.start(environment: environment, launcher: launcher, in: old.dir)
        life.withLock { $0.containerd = started }
    }

    /// Registers what `abandon()` must undo besides containerd, the test's processes and
    /// mounts (run newest first): a test that times out still runs it.
    func onAbandon(_ cleanup: @escaping @Sendable () async -> Void) {
        life.withLock { $0.cleanups.insert(cleanup, at: 0) }
    }

    /// Cleanup after a failed test: containerd's output (with the shims' logs) kept in
    /// `<dir>.log` for diagnosis, containerd stopped, every process of the test killed by PID,
    /// its mounts detached.
    func abandon() async {
        for cleanup in life.withLock({ $0.cleanups }) { await cleanup() }
        let report = containerd.process.outputText + "\n--- shim stderr ---\n"
            + ((try? String(contentsOfFile: containerd.dir.file("shim.stderr"), encoding: .utf8)) ?? "")
        try? report.write(toFile: containerd.dir.path + ".log", atomically: true, encoding: .utf8)
        await containerd.stop()
        for entry in livingProcesses(mentioning: containerd.dir.path) {
            if let pid = Int32(entry.split(separator: ":").first ?? "") { kill(pid, SIGKILL) }
        }
        for mountPoint in mountPoints(under: containerd.dir.path) { try? Mounts.unmount(mountPoint, detach: true) }
        removeCgroups()
    }

    /// This test's namespace directory in every hierarchy that shows the whole tree.
    private var namespaceCgroupDirectories: [String] {
        Cgroups.mountedHierarchies().filter { $0.root == "/" }.map { $0.mountPoint + "/" + namespace }
    }

    /// Container cgroups under the test's namespace, in any hierarchy.
    func leftCgroups() -> [String] {
        namespaceCgroupDirectories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).map { directory + "/" + $0 }
                .filter { (try? FileManager.default.attributesOfItem(atPath: $0)[.type] as? FileAttributeType) == .typeDirectory }
        }
    }

    /// The namespace's cgroups, what is in them SIGKILLed by PID (only this test's processes).
    func removeCgroups() {
        for directory in leftCgroups() + namespaceCgroupDirectories {
            for pid in Cgroups.processes(in: directory) ?? [] { kill(pid, SIGKILL) }
            for _ in 0..<50 where (try? Cgroups.remove(directory)) == nil { usleep(20_000) }
        }
    }
}
