#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys

/// What runsc keeps in its `--root`: per container `<id>_sandbox:<sandbox>.state` and `.lock`,
/// and (since 2023) a sandbox's control socket. Read and cleaned here without running runsc
/// or any process, for the paths where runsc cannot help (it hangs, or the sandbox is gone)
/// and for `delete`'s quick path, which must not start a supervisor.
public struct RunscRoot: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    /// Removes what `runsc delete` would have for container `id` when runsc itself cannot
    /// (it hung or failed): its state and lock files, `<root>/<id>_sandbox:<sandbox>.state|.lock`,
    /// and, for a sandbox, its control socket. Returns the paths removed.
    @discardableResult
    public func removeState(_ id: String) -> [String] {
        let paths = stateFiles(id)
        paths.forEach { Files.remove($0) }
        return paths
    }

    /// Removes the state and lock files of every container of sandbox `sandboxID`, and the
    /// temporary files of a state write that a killed runsc call left half done; returns them.
    public func removeSandboxState(_ sandboxID: String) -> [String] {
        let suffixes = [".state", ".lock"].map { "_sandbox:\(sandboxID)\($0)" }
        let socket = Self.controlSocketName(sandboxID)
        let paths = Directories.entries(path)
            .filter { name in name == socket || suffixes.contains { name.hasSuffix($0) || name.contains($0 + ".tmp") } }
            .map { "\(path)/\($0)" }
        paths.forEach { Files.remove($0) }
        return paths
    }

    /// Once sandbox `sandboxID`'s own state file is gone: the lock files left under its name
    /// with no state file beside them, and its control socket (what a runsc call that loaded
    /// the sandbox after it was destroyed leaves). Nothing while the sandbox's state exists.
    public func removeStaleSandboxLocks(_ sandboxID: String) -> [String] {
        let entries = Set(Directories.entries(path))
        guard !entries.contains("\(sandboxID)_sandbox:\(sandboxID).state") else { return [] }
        let stale = entries.filter { name in
            name == Self.controlSocketName(sandboxID)
                || (name.hasSuffix("_sandbox:\(sandboxID).lock") && !entries.contains(String(name.dropLast(".lock".count)) + ".state"))
        }.sorted().map { "\(path)/\($0)" }
        stale.forEach { Files.remove($0) }
        return stale
    }

    /// Where container `id`'s sandbox serves its control channel, from runsc's state file:
    /// the sandbox's id (the file's name) and `sandbox.controlSocketPath` (runsc since 2023;
    /// nil for runsc 2022, whose abstract socket is not recorded). nil without a state file.
    public func controlSocket(of id: String) -> (sandboxID: String, path: String?)? {
        let prefix = "\(id)_sandbox:"
        guard let name = Directories.entries(path).first(where: { $0.hasPrefix(prefix) && $0.hasSuffix(".state") }) else { return nil }
        let sandboxID = String(name.dropFirst(prefix.count).dropLast(".state".count))
        struct State: Decodable {
            struct Sandbox: Decodable { var controlSocketPath: String? }
            var sandbox: Sandbox?
        }
        let recorded = FileDescriptor.readAll("\(path)/\(name)").flatMap { try? JSONDecoder().decode(State.self, from: Data($0)) }
        return (sandboxID, recorded?.sandbox?.controlSocketPath.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Whether runsc keeps any state for container `id` (nothing to delete otherwise).
    public func hasState(_ id: String) -> Bool { !stateFiles(id).isEmpty }

    private func stateFiles(_ id: String) -> [String] {
        let prefix = "\(id)_sandbox:"
        let socket = Self.controlSocketName(id)
        return Directories.entries(path)
            .filter { $0 == socket || ($0.hasPrefix(prefix) && ($0.hasSuffix(".state") || $0.hasSuffix(".lock"))) }
            .map { "\(path)/\($0)" }
    }

    /// runsc since 2023 serves a sandbox's control channel on a socket file in its root,
    /// `runsc-<sandbox id>.sock` (2022 used an abstract socket). The sandbox removes it when
    /// `runsc delete` destroys it; a sandbox killed without that call leaves it behind.
    public static func controlSocketName(_ sandboxID: String) -> String { "runsc-\(sandboxID).sock" }
}
