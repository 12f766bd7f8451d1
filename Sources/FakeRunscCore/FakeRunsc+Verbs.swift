// The CLI subcommands fake-runsc answers as runsc does (create, start, state, kill, wait,
// delete, ps, pause/resume, events, exec). Each is a short-lived call; the long-lived
// processes they leave are in FakeRunsc+Roles.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import NetNS

extension FakeRunsc {
    // MARK: verbs

    static func create(_ arguments: inout [String], root: String, executable: String, globals: [String: String], faults: Faults) throws {
        let options = Options(arguments)
        guard let id = options.positional.first else { throw Failure("create: missing container id") }
        let bundle = options.values["bundle"] ?? "."
        if statePath(id, root: root) != nil {
            throw Failure("creating container: container with id \(id) already exists")
        }
        guard let specBytes = FileDescriptor.readAll("\(bundle)/config.json") else {
            throw Failure("creating container: cannot read spec \(bundle)/config.json")
        }
        let spec = try JSONDecoder().decode(Spec.self, from: Data(specBytes))
        if let sandboxID = spec.joinsSandbox {
            // A subcontainer: no new sandbox; it runs in the named one, started by `start`.
            guard let sandbox = try? load(sandboxID, root: root), processAlive(sandbox.sandboxPid) else {
                throw Failure("creating container: cannot load sandbox: sandbox \(sandboxID) does not exist")
            }
            try Directories.make(root)
            let cgroupsPath = makeCgroup(spec, processes: [])
            try save(
                State(id: id, bundle: bundle, status: "created", sandboxPid: sandbox.sandboxPid, goferPid: 0,
                    sandboxID: sandboxID, consoleSocket: options.values["console-socket"], cgroupsPath: cgroupsPath,
                    sandbox: sandbox.sandbox), root: root)
            if let pidFile = options.values["pid-file"] { try Files.write(pidFile, "\(sandbox.sandboxPid)") }
            return
        }
        try Directories.make(root)
        let globalArgs = globals.sorted { $0.key < $1.key }.map { "--\($0.key)=\($0.value)" }
        // The sandbox and gofer get create's own stdio, as runsc's do; with a console socket
        // the sandbox gets a new terminal whose master goes to the socket.
        let slave = try (options.values["console-socket"]).map(sendTerminal)
        let stdio: [Int32] = slave.map { [$0, $0, $0] } ?? [0, 1, 2]
        let sandbox = try Spawn.spawn(
            path: executable, arguments: globalArgs + ["sandbox-main", id], environment: environment(),
            descriptors: stdio, newSession: true)
        if let slave { FileDescriptor.close(slave) }
        let null = try FileDescriptor.openNull()
        let gofer = try Spawn.spawn(
            path: executable, arguments: globalArgs + ["gofer-main", id], environment: environment(),
            stdin: null, stdout: null, stderr: null, newSession: true)
        FileDescriptor.close(null)
        let cgroupsPath = makeCgroup(spec, processes: [sandbox, gofer])
        // runsc since 2023 serves the sandbox's control channel on a socket file in its root
        // and records it in the state (the sandbox listens on it, ControlServer); only
        // `runsc delete` removes the file, which a killed sandbox leaves behind.
        let control = faults.contains(.noControl) ? nil : SandboxRecord(controlSocketPath: controlSocketPath(id, root: root))
        if let path = control?.controlSocketPath, let listener = try? UnixSocket.listen(path: path, mode: 0o600, backlog: 16) {
            UnixSocket.close(listener)  // the file exists from create on, as runsc's does
        }
        try save(
            State(id: id, bundle: bundle, status: "created", sandboxPid: sandbox, goferPid: gofer, sandboxID: id, cgroupsPath: cgroupsPath,
                sandbox: control),
            root: root)
        if let pidFile = options.values["pid-file"] {
            try Files.write(pidFile, "\(faults.contains(.liePid) ? unusedPid() : sandbox)")
        }
        if faults.contains(.crashOnCreate) {
            throw Failure("creating container: fake crash-on-create")
        }
    }

    static func start(_ arguments: [String], root: String, faults: Faults) throws {
        let id = try containerID(arguments)
        var state = try load(id, root: root)
        guard state.status == "created" else { throw Failure("cannot start container in state \(state.status)") }
        if faults.contains(.failStart) { throw Failure("starting container: fake fail-start") }
        if faults.contains(.slowStart) { Sleep.seconds(2) }
        if state.sandboxID == nil || state.sandboxID == id, let bytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let adjust = (try? JSONDecoder().decode(Spec.self, from: Data(bytes)))?.process.oomScoreAdj
        {
            // As runsc start: the sandbox and gofer get the spec's oom_score_adj, and a value
            // the caller may not set (lower than its own without CAP_SYS_RESOURCE) fails start.
            for pid in [state.sandboxPid, state.goferPid] where pid > 0 {
                do throws(Errno) {
                    let fd = try FileDescriptor.open("/proc/\(pid)/oom_score_adj", forWriting: true, append: true)
                    defer { FileDescriptor.close(fd) }
                    try FileDescriptor.writeAll(fd, Array("\(adjust)".utf8))
                } catch {
                    throw Failure("starting container: setting oom_score_adj \(adjust) of pid \(pid): \(error)")
                }
            }
        }
        state.status = "running"
        try save(state, root: root)  // the sandbox polls its state for this
        if let sandboxID = state.sandboxID, sandboxID != id {
            // A subcontainer's process gets start's stdio (or a new terminal), as in runsc.
            let slave = try (state.consoleSocket).map(sendTerminal)
            let stdio: [Int32] = slave.map { [$0, $0, $0] } ?? [0, 1, 2]
            _ = try Spawn.spawn(
                path: ProcessIdentity.executablePath ?? "fake-runsc", arguments: ["--root=\(root)", "container-main", id],
                environment: environment(), descriptors: stdio, newSession: true)
            if let slave { FileDescriptor.close(slave) }
        }
        // Like runsc, return once the container process exists.
        for _ in 0..<500 {
            if let current = try? load(id, root: root), current.containerPid != nil || current.status == "stopped" { return }
            Sleep.milliseconds(10)
        }
        throw Failure("starting container: sandbox did not start the process")
    }

    static func printState(_ arguments: [String], root: String) throws {
        let id = try containerID(arguments)
        let state = try load(id, root: root)
        let status = processAlive(state.sandboxPid) ? state.status : "stopped"
        Console.output(
            "{\"ociVersion\":\"1.0.0\",\"id\":\"\(id)\",\"pid\":\(state.sandboxPid),\"status\":\"\(status)\",\"bundle\":\"\(state.bundle)\"}")
    }

    static func kill(_ arguments: [String], root: String, faults: Faults) throws {
        let options = Options(arguments)
        guard options.positional.count >= 1 else { throw Failure("kill: missing container id") }
        let state = try load(options.positional[0], root: root)
        let signal = options.positional.count > 1 ? Int32(options.positional[1]) ?? 15 : 15
        try deliver(signal, to: state, all: options.flags.contains("all"), pid: options.values["pid"].flatMap { Int32($0) }, root: root, faults: faults)
    }

    /// What `runsc kill` and the control server's Signal do.
    static func deliver(_ signal: Int32, to state: State, all: Bool, pid target: Int32?, root: String, faults: Faults) throws {
        if faults.contains(.unkillableUntilNetnsDown), target == nil {
            // The wedge seen in the field: while the pod's links are up the sentry does not
            // stop. The kill is recorded (with what the links were) and takes effect only once
            // they are down; the sandbox applies it then.
            let linksUp = networkLinksUp(state)
            record(root: root, "kill \(signal) links=\(linksUp ? "up" : "down")")
            if linksUp {
                var pending = state
                pending.pendingSignal = signal
                try save(pending, root: root)
                return
            }
        }
        if let target {
            guard processAlive(target) else { throw Failure("cannot signal process \(target): no such process") }
            ChildProcesses.signalUnreaped(target, signal)
            return
        }
        guard let pid = state.containerPid, state.status != "stopped", processAlive(state.sandboxPid) else {
            throw Failure("cannot signal container: container is not running")
        }
        if all {
            ChildProcesses.signalGroup(pid, signal)
        } else {
            ChildProcesses.signalUnreaped(pid, signal)
        }
    }

    static func wait(_ arguments: [String], root: String) throws {
        let id = try containerID(arguments)
        while true {
            let state = try load(id, root: root)
            if state.status == "stopped" || !processAlive(state.sandboxPid) {
                Console.output("{\"id\":\"\(id)\",\"exitStatus\":\(state.exitStatus ?? 128 + 9)}")
                return
            }
            Sleep.milliseconds(20)
        }
    }

    static func delete(_ arguments: [String], root: String, faults: Faults) throws {
        let options = Options(arguments)
        let id = try containerID(options.positional)
        guard let state = try? load(id, root: root) else {
            throw Failure("loading container: container \"\(id)\" does not exist")
        }
        if processAlive(state.sandboxPid) && state.status != "stopped" && state.status != "created" && !options.flags.contains("force") {
            throw Failure("cannot delete container in state \(state.status)")
        }
        if let container = state.containerPid { ChildProcesses.signalGroup(container, 9) }
        let isSubcontainer = state.sandboxID != nil && state.sandboxID != id
        for pid in [state.sandboxPid, state.goferPid] where !isSubcontainer && pid > 0 && processAlive(pid) {
            ChildProcesses.signalUnreaped(pid, 9)
        }
        // runsc removes the cgroup once the container is destroyed; `leave-cgroup` is a delete
        // that could not (runsc's, when it cannot reach a wedged sandbox or its lock is held).
        if let cgroupsPath = state.cgroupsPath, !faults.contains(.leaveCgroup) {
            for pid in [state.sandboxPid, state.goferPid] where !isSubcontainer && pid > 0 {
                for _ in 0..<200 where processAlive(pid) { Sleep.milliseconds(5) }
            }
            for directory in Cgroups.directories(of: cgroupsPath, in: v1Hierarchies()) { try? Cgroups.remove(directory) }
        }
        if let path = statePath(id, root: root) { Files.remove(path) }
        if !isSubcontainer { Files.remove(controlSocketPath(id, root: root)) }
    }

    static func controlSocketPath(_ sandboxID: String, root: String) -> String { "\(root)/runsc-\(sandboxID).sock" }

    /// As runsc does with cgroup v1: the spec's cgroup in every hierarchy, with the sandbox and
    /// gofer in it for a sandbox root. Relative and systemd paths are not emulated.
    static func makeCgroup(_ spec: Spec, processes: [Int32]) -> String? {
        guard let path = spec.linux?.cgroupsPath, path.hasPrefix("/"), !path.contains(":"), path != "/" else { return nil }
        for directory in Cgroups.directories(of: path, in: v1Hierarchies()) where (try? Directories.make(directory)) != nil {
            for pid in processes { try? Cgroups.addProcess(pid, to: directory) }
        }
        return path
    }

    static func v1Hierarchies() -> [Cgroups.Hierarchy] { Cgroups.mountedHierarchies().filter { $0.type == "cgroup" } }

    static func ps(_ arguments: [String], root: String) throws {
        let options = Options(arguments)
        let state = try load(try containerID(options.positional), root: root)
        Console.output("[\(state.containerPid.map { String($0) } ?? "")]")
    }

    static func pauseOrResume(_ arguments: [String], root: String, pause: Bool) throws {
        let id = try containerID(arguments)
        var state = try load(id, root: root)
        guard let pid = state.containerPid, state.status == (pause ? "running" : "paused") else {
            throw Failure("cannot \(pause ? "pause" : "resume") container in state \(state.status)")
        }
        ChildProcesses.signalUnreaped(pid, pause ? 19 /* SIGSTOP */ : 18 /* SIGCONT */)
        state.status = pause ? "paused" : "running"
        try save(state, root: root)
    }

    static func events(_ arguments: [String], root: String) throws {
        let options = Options(arguments)
        let state = try load(try containerID(options.positional), root: root)
        Console.output(#"{"type":"stats","id":"\#(state.id)","data":\#(statsJSON(state))}"#)
    }


    /// `runsc help`: the subcommand list, in runsc's layout ("\t<name>  <summary>").
    static func help(faults: Faults) {
        var verbs = ["create", "delete", "events", "exec", "help", "kill", "pause", "ps", "resume", "start", "state", "wait"]
        if !faults.contains(.noUpdate) { verbs.append("update") }
        Console.output(
            "Usage: runsc <flags> <subcommand> <subcommand args>\n\nSubcommands:\n"
                + verbs.sorted().map { "\t\($0)\(String(repeating: " ", count: 17 - $0.count))fake-runsc \($0)" }.joined(separator: "\n"))
    }

    /// `update --resources=- ID` as runsc 2025+: OCI LinuxResources JSON on stdin (or in a
    /// file), refused unless it is a JSON object and the container is not stopped. What it
    /// was given is recorded in the fault log (`update <id> <json>`) for the tests to read.
    static func update(_ arguments: [String], root: String) throws {
        let options = Options(arguments)
        let id = try containerID(options.positional)
        let state = try load(id, root: root)
        guard state.status != "stopped", processAlive(state.sandboxPid) else {
            throw Failure("cannot update container in state stopped")
        }
        let source = options.values["resources"] ?? "-"
        let bytes = FileDescriptor.readAll(source == "-" ? "/proc/self/fd/0" : source)
        guard let bytes, (try? JSONDecoder().decode([String: JSONAny].self, from: Data(bytes))) != nil else {
            throw Failure("update: reading resources from \(source): not a JSON object")
        }
        let compact = String(decoding: bytes, as: UTF8.self).filter { $0 != "\n" }
        record(root: root, "update \(id) \(compact)")
    }

    /// `exec --detach --process F --pid-file P --internal-pid-file I [--console-socket S] id`:
    /// leaves an `exec-main` process (pid in P) that exits with the exec's status, like runsc.
    static func exec(_ arguments: [String], root: String, executable: String, globals: [String: String]) throws {
        let options = Options(arguments)
        let id = try containerID(options.positional)
        let state = try load(id, root: root)
        guard state.status == "running" || state.status == "paused", processAlive(state.sandboxPid) else {
            throw Failure("cannot exec in container in state \(state.status)")
        }
        guard let processFile = options.values["process"], let pidFile = options.values["pid-file"] else {
            throw Failure("exec: --process and --pid-file are required")
        }
        let slave = try (options.values["console-socket"]).map(sendTerminal)
        let stdio: [Int32] = slave.map { [$0, $0, $0] } ?? [0, 1, 2]
        Files.remove(pidFile)
        _ = try Spawn.spawn(
            path: executable,
            arguments: ["--root=\(root)", "exec-main", id, processFile, pidFile, options.values["internal-pid-file"] ?? ""],
            environment: environment(), descriptors: stdio, newSession: true)
        if let slave { FileDescriptor.close(slave) }
        for _ in 0..<500 {
            if FileDescriptor.readAll(pidFile).map({ !$0.isEmpty }) == true { return }
            Sleep.milliseconds(10)
        }
        throw Failure("exec: the process did not start")
    }
}

/// Any JSON value, to check that a document is well-formed without a schema.
struct JSONAny: Decodable {
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { return }
        if (try? container.decode(Bool.self)) != nil || (try? container.decode(Double.self)) != nil
            || (try? container.decode(String.self)) != nil || (try? container.decode([JSONAny].self)) != nil
            || (try? container.decode([String: JSONAny].self)) != nil
        {
            return
        }
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
    }
}

