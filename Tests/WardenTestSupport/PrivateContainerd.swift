import Foundation

/// A containerd started for one test: its own root, state, socket and config under a
/// temp dir, stopped by PID, then audited for leftovers.
public final class PrivateContainerd: Sendable {
    public let dir: TempDir
    public let process: ChildProcess
    public var address: String { dir.file("c.sock") }
    /// containerd 1.6 serves ttrpc on the gRPC address + ".ttrpc".
    public var ttrpcAddress: String { address + ".ttrpc" }

    private init(dir: TempDir, process: ChildProcess) {
        self.dir = dir
        self.process = process
    }

    /// Starts containerd and waits until it serves. `extraConfig` is appended to the TOML.
    /// `launcher` (e.g. setpriv and its flags) execs containerd, keeping its pid.
    public static func start(
        extraConfig: String = "", disableCRI: Bool = true, environment: [String: String]? = nil, launcher: [String] = [],
        in existing: TempDir? = nil
    ) async throws -> PrivateContainerd {
        let dir = try existing ?? TempDir("wdc")
        let config = """
            version = 2
            root = "\(dir.file("root"))"
            state = "\(dir.file("state"))"
            disabled_plugins = [\(disableCRI ? "\"io.containerd.grpc.v1.cri\", " : "")"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
            [grpc]
              address = "\(dir.file("c.sock"))"
            \(ContainerdUnderTest.socketDirConfig(state: dir.file("state")))
            \(extraConfig)
            """
        try config.write(toFile: dir.file("config.toml"), atomically: true, encoding: .utf8)
        let command = launcher + [ContainerdUnderTest.containerd, "--config", dir.file("config.toml"), "--log-level", "info"]
        let process = try ChildProcess(command[0], Array(command.dropFirst()), environment: environment)
        let containerd = PrivateContainerd(dir: dir, process: process)
        do {
            try await process.waitForOutput(containing: "containerd successfully booted", timeout: .seconds(30))
        } catch {
            await containerd.stop()
            throw error
        }
        return containerd
    }

    public func stop() async {
        await process.stop(grace: .seconds(10))
    }

    /// Leak audit after `stop()`: containerd is gone, no live process mentions the test's
    /// directory on its command line (shims, runsc sandboxes and gofers, fake-runsc roles all
    /// do), nothing is mounted under it. Then the temp dir is removed (unless `keep`).
    public func auditNothingLeft(keep: Bool = false) throws {
        struct Leak: Error, CustomStringConvertible { let description: String }
        if processExists(process.pid) && !isZombie(process.pid) {
            throw Leak(description: "containerd pid \(process.pid) still running")
        }
        let leftovers = livingProcesses(mentioning: dir.path)
        if !leftovers.isEmpty { throw Leak(description: "processes left: \(leftovers)") }
        let leaked = mountPoints(under: dir.path)
        if !leaked.isEmpty { throw Leak(description: "mounts left under \(dir.path): \(leaked)") }
        if !keep { dir.remove() }
    }
}

/// Live (non-zombie) processes whose command line contains `text`, as "pid: cmdline".
public func livingProcesses(mentioning text: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var result: [String] = []
    for entry in entries {
        guard let pid = Int32(entry), pid != getpid() else { continue }
        guard let raw = procBytes("/proc/\(pid)/cmdline"), !raw.isEmpty else { continue }
        let cmdline = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        // A fake-runsc container's process (`sleep 100000` in a chroot) names its pod only in
        // its environment: it is the test's too.
        let environment = procBytes("/proc/\(pid)/environ").map { String(decoding: $0, as: UTF8.self) } ?? ""
        let fakeContainer = environment.split(separator: "\0").contains { $0.hasPrefix("WARDEN_FAKE_RUNSC_CONTAINER=") && $0.contains(text) }
        if (cmdline.contains(text) || fakeContainer) && !isZombie(pid) { result.append("\(pid): \(cmdline)") }
    }
    return result
}

/// /proc/PID/comm of a `livingProcesses` entry ("PID: cmdline"), or "" once it is gone.
public func processName(_ entry: String) -> String {
    guard let pid = entry.split(separator: ":").first,
        let comm = procText("/proc/\(pid)/comm")
    else { return "" }
    return comm.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A zombie has exited; only its parent's reaping is missing (containerd 1.6 leaves its shims
/// to pid 1, which on these machines does not reap).
public func isZombie(_ pid: Int32) -> Bool {
    guard let stat = procText("/proc/\(pid)/stat"),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
}
