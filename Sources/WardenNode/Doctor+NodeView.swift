// What doctor reads from the node, once per run: the process table seen as shims, runsc
// processes and their roots, and the parts of a bundle's spec doctor needs. No finding is
// made here.

import Foundation
import LinuxSys
import OCI
import ShimLayout

/// What a node holds, read once; every finding is derived from one such reading.
struct NodeView {
    let processes: [ProcessEntry]
    let byPid: [Int32: ProcessEntry]
    /// (namespace, id) of every live shim (any runtime); a Warden shim also by its pod.
    let liveShims: Set<[String]>
    let shimPids: Set<Int32>

    init(processes: [ProcessEntry]) {
        self.processes = processes.filter { $0.state != "Z" && $0.state != "X" }
        byPid = Dictionary(self.processes.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        var keys: Set<[String]> = []
        var pids: Set<Int32> = []
        for entry in self.processes where NodeView.isShim(entry) {
            pids.insert(entry.pid)
            let namespace = NodeView.flag(entry, "-namespace") ?? ""
            if let id = NodeView.flag(entry, "-id") { keys.insert([namespace, id]) }
            let pod = ProcessTable.environment(entry.pid).first { $0.hasPrefix(ShimEnvironment.pod + "=") }?.dropFirst(ShimEnvironment.pod.count + 1)
            if let pod { keys.insert([namespace, String(pod)]) }
        }
        liveShims = keys
        shimPids = pids
    }

    /// A shim server of any runtime (containerd-shim-*), not its start/delete run.
    static func isShim(_ entry: ProcessEntry) -> Bool {
        guard let first = entry.arguments.first, first.split(separator: "/").last?.hasPrefix("containerd-shim") == true
        else { return false }
        return !entry.arguments.contains("start") && !entry.arguments.contains("delete")
    }

    static func flag(_ entry: ProcessEntry, _ name: String) -> String? {
        guard let index = entry.arguments.firstIndex(of: name), index + 1 < entry.arguments.count else { return nil }
        return entry.arguments[index + 1]
    }

    /// The runsc root a process was started with (`--root=DIR`).
    static func runscRoot(_ entry: ProcessEntry) -> String? {
        entry.arguments.first { $0.hasPrefix("--root=") }.map { String($0.dropFirst("--root=".count)) }
    }

    /// The container a runsc process is for: its `--bundle`'s name (the gofer's only clue),
    /// else its last argument that is not a flag (boot, create, kill … take the id last).
    static func containerID(_ entry: ProcessEntry) -> String {
        var bundle: String?
        for (index, argument) in entry.arguments.enumerated() {
            if argument.hasPrefix("--bundle=") { bundle = String(argument.dropFirst("--bundle=".count)) }
            if argument == "--bundle", index + 1 < entry.arguments.count { bundle = entry.arguments[index + 1] }
        }
        if let bundle, let name = bundle.split(separator: "/").last { return String(name) }
        return entry.arguments.dropFirst().last { !$0.hasPrefix("-") } ?? "?"
    }

    /// Whether a live shim is among the process's ancestors.
    func hasShimAncestor(_ entry: ProcessEntry) -> Bool {
        var current = entry.parent
        var seen = 0
        while current > 1, seen < 64, let parent = byPid[current] {
            if shimPids.contains(parent.pid) { return true }
            current = parent.parent
            seen += 1
        }
        return false
    }
}

/// The parts of a bundle's config.json doctor needs.
struct BundleSpec: Decodable {
    var linux: OCILinux?

    var networkNamespace: String? { linux?.networkNamespacePath }
    var cgroupsPath: String? { linux?.cgroupsPath }

    static func read(_ bundle: String) -> BundleSpec {
        guard let bytes = FileDescriptor.readAll(bundle + "/config.json", limit: 16 << 20),
            let spec = try? JSONDecoder().decode(BundleSpec.self, from: Data(bytes))
        else { return BundleSpec() }
        return spec
    }
}

extension String {
    var trimmingSpaces: String { String(filter { !$0.isWhitespace }) }
}
