// fake-runsc's data: the state file it keeps per container (as runsc keeps one under --root),
// the parts of the OCI spec it reads, subcommand options, and the lookups over them. No verb
// and no process role lives here.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import NetNS
import OCI

extension FakeRunsc {
    struct State: Codable {
        var id: String
        var bundle: String
        var status: String  // created | running | paused | stopped
        var sandboxPid: Int32
        var goferPid: Int32
        var containerPid: Int32?
        var exitStatus: Int32?
        /// The sandbox this container runs in (its own id for a sandbox root).
        var sandboxID: String?
        /// A subcontainer's console socket, used at start (as runsc does).
        var consoleSocket: String?
        /// unkillable-until-netns-down: a kill waiting for the links to go down.
        var pendingSignal: Int32?
        /// The spec's absolute `linux.cgroupsPath`, made at create as runsc makes it.
        var cgroupsPath: String?
        /// What runsc 2024 records of the sandbox in every container's state (its control socket).
        var sandbox: SandboxRecord?
    }

    struct SandboxRecord: Codable {
        var controlSocketPath: String?
    }

    struct Spec: Decodable {
        struct Process: Decodable {
            var args: [String]
            var env: [String]?
            var terminal: Bool?
            var oomScoreAdj: Int?
        }
        struct Root: Decodable {
            var path: String
        }
        var process: Process
        var root: Root?
        var annotations: [String: String]?
        var linux: OCILinux?

        var networkNamespacePath: String? { linux?.networkNamespacePath }

        /// The sandbox to join, as runsc reads CRI's annotations.
        var joinsSandbox: String? {
            guard annotations?["io.kubernetes.cri.container-type"] == "container" else { return nil }
            return annotations?["io.kubernetes.cri.sandbox-id"]
        }
    }

    // MARK: helpers

    /// The sandbox and gofer start before `create` writes the state file: wait for it, so
    /// that a missing file later means the container was deleted.
    static func awaitCreated(_ id: String, root: String) -> Bool {
        for _ in 0..<1000 {
            if (try? load(id, root: root)) != nil { return true }
            Sleep.milliseconds(10)
        }
        return false
    }

    static func containerID(_ arguments: [String]) throws -> String {
        guard let id = arguments.first(where: { !$0.hasPrefix("-") }) else { throw Failure("missing container id") }
        return id
    }

    /// The verbs whose container id runsc resolves by prefix (not create, which names a new one).
    static let cliVerbsNamingAContainer: Set<String> = [
        "start", "state", "kill", "wait", "delete", "ps", "pause", "resume", "events", "exec", "update",
    ]

    /// Resolves the container id argument as runsc (2022-12-19) does: every container in
    /// `--root` whose id begins with it is a candidate, an exact match included, so `c1`
    /// is ambiguous once `c10` exists there. Unknown ids are left for the verb to report.
    static func resolveContainerID(in arguments: inout [String], root: String) throws {
        guard let index = positionalIndex(arguments) else { return }
        let partial = arguments[index]
        let candidates = Directories.entries(root).compactMap { name -> String? in
            guard name.hasSuffix(".state"), let range = name.firstRange(of: "_sandbox:") else { return nil }
            let id = String(name[..<range.lowerBound])
            return id.hasPrefix(partial) ? id : nil
        }.sorted()
        if candidates.count > 1 {
            throw Failure("loading sandbox: id \"\(partial)\" is ambiguous and could refer to multiple containers: \(candidates)", status: 128)
        }
        if let only = candidates.first { arguments[index] = only }
    }

    /// Where the first positional argument (the container id) is, skipping flags and the
    /// values of those that take one.
    static func positionalIndex(_ arguments: [String]) -> Int? {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if !argument.hasPrefix("-") { return index }
            let name = String(argument.drop(while: { $0 == "-" }))
            if !name.contains("="), Options.valueFlags.contains(name) { index += 1 }
            index += 1
        }
        return nil
    }

    /// runsc's own layout: `<root>/<container>_sandbox:<sandbox>.state`.
    static func statePath(_ id: String, root: String) -> String? {
        Directories.entries(root).first { $0.hasPrefix("\(id)_sandbox:") && $0.hasSuffix(".state") }.map { "\(root)/\($0)" }
    }

    static func load(_ id: String, root: String) throws -> State {
        guard let bytes = statePath(id, root: root).flatMap({ FileDescriptor.readAll($0) }) else {
            throw Failure("loading container: container \"\(id)\" does not exist")
        }
        return try JSONDecoder().decode(State.self, from: Data(bytes))
    }

    static func save(_ state: State, root: String) throws {
        let data = try JSONEncoder().encode(state)
        try Files.write("\(root)/\(state.id)_sandbox:\(state.sandboxID ?? state.id).state", String(decoding: data, as: UTF8.self))
    }

    /// Alive and not a zombie.
    /// A pid no process has now: from the top of the pid range down (the kernel hands out
    /// low pids first, so one up there stays unused for a test's life).
    static func unusedPid() -> Int32 {
        let text = FileDescriptor.readAll("/proc/sys/kernel/pid_max").map { String(decoding: $0, as: UTF8.self) } ?? ""
        let max = Int32(text.filter(\.isNumber)) ?? 32768
        var pid = max - 1
        while FileDescriptor.exists("/proc/\(pid)") && pid > 2 { pid -= 1 }
        return pid
    }

    static func processAlive(_ pid: Int32) -> Bool {
        guard let stat = FileDescriptor.readAll("/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.first != "Z" && fields.first != "X"
    }


    struct Options {
        /// Flags of the subcommands that take a value as the next argument.
        static let valueFlags: Set<String> = [
            "bundle", "pid-file", "console-socket", "format", "user-log", "interval", "process", "internal-pid-file", "pid", "resources",
        ]
        var values: [String: String] = [:]
        var flags: Set<String> = []
        var positional: [String] = []
        init(_ arguments: [String]) {
            var index = 0
            while index < arguments.count {
                let argument = arguments[index]
                if argument.hasPrefix("-") {
                    let name = String(argument.drop(while: { $0 == "-" }))
                    if let equals = name.firstIndex(of: "=") {
                        values[String(name[..<equals])] = String(name[name.index(after: equals)...])
                    } else if Self.valueFlags.contains(name), index + 1 < arguments.count
                    {
                        values[name] = arguments[index + 1]
                        index += 1
                    } else {
                        flags.insert(name)
                    }
                } else {
                    positional.append(argument)
                }
                index += 1
            }
        }
    }
}
