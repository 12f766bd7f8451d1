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
    public static func start(extraConfig: String = "", disableCRI: Bool = true) async throws -> PrivateContainerd {
        let dir = try TempDir("wdc")
        let config = """
            version = 2
            root = "\(dir.file("root"))"
            state = "\(dir.file("state"))"
            disabled_plugins = [\(disableCRI ? "\"io.containerd.grpc.v1.cri\", " : "")"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
            [grpc]
              address = "\(dir.file("c.sock"))"
            \(extraConfig)
            """
        try config.write(toFile: dir.file("config.toml"), atomically: true, encoding: .utf8)
        let process = try ChildProcess("/usr/bin/containerd", ["--config", dir.file("config.toml"), "--log-level", "info"])
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

    /// Leak audit after `stop()`: containerd is gone, nothing is mounted under its dirs.
    /// Then the temp dir is removed.
    public func auditNothingLeft() throws {
        struct Leak: Error, CustomStringConvertible { let description: String }
        if processExists(process.pid) { throw Leak(description: "containerd pid \(process.pid) still running") }
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let leaked = mounts.split(separator: "\n").filter { $0.contains(dir.path) }
        if !leaked.isEmpty { throw Leak(description: "mounts left under \(dir.path): \(leaked)") }
        dir.remove()
    }
}
