// Findings about processes: runsc processes whose shim is gone, and tasks containerd still
// lists whose process is gone. Reads the NodeView; never signals anything (sweep does).

import Foundation
import LinuxSys

extension Doctor {
    /// runsc processes (sandbox, gofer, a hung CLI call) of a root in scope whose shim is gone.
    static func orphanProcesses(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        view.processes.compactMap { entry -> Finding? in
            guard let root = NodeView.runscRoot(entry), inScope(root, scope), !view.hasShimAncestor(entry) else { return nil }
            let command = entry.arguments.prefix(1).map { $0.split(separator: "/").last.map(String.init) ?? $0 }.first ?? entry.name
            let verb = entry.arguments.dropFirst().first { !$0.hasPrefix("-") } ?? ""
            return Finding(
                kind: .orphanProcess, what: "pid \(entry.pid) (\(command) \(verb))",
                owner: "runsc root \(root), container \(NodeView.containerID(entry))",
                why: "no containerd shim among its ancestors (parent pid \(entry.parent)): nothing will stop or reap it",
                pid: entry.pid, startTime: entry.startTime)
        }
    }

    /// Tasks containerd lists whose process is gone.
    static func tasksWithoutProcess(_ scope: DoctorScope, _ view: NodeView) -> [Finding] {
        var findings: [Finding] = []
        for address in scope.containerdAddresses where FileDescriptor.exists(address) {
            let namespaces = Command.run(scope.ctr, ["-a", address, "namespaces", "ls", "-q"], within: .seconds(10))
            for namespace in (namespaces?.output ?? "").split(separator: "\n").map(String.init) where !namespace.isEmpty {
                let listed = Command.run(scope.ctr, ["-a", address, "-n", namespace, "task", "ls"], within: .seconds(10))
                for line in (listed?.output ?? "").split(separator: "\n").dropFirst() {
                    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                    guard fields.count >= 3, let pid = Int32(fields[1]) else { continue }
                    let status = String(fields[2])
                    guard status == "RUNNING" || status == "PAUSED" || status == "CREATED", pid > 0, view.byPid[pid] == nil
                    else { continue }
                    findings.append(
                        Finding(
                            kind: .taskWithoutProcess, what: "task \(fields[0]) (\(status), pid \(pid))",
                            owner: "containerd \(address), namespace \(namespace)",
                            why: "containerd lists it \(status) but pid \(pid) does not exist", address: address,
                            namespace: namespace, container: String(fields[0])))
                }
            }
        }
        return findings
    }
}
