#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import NetNS

/// fake-runsc's implementation (the executable is a thin main). Plain blocking code: it is a
/// short-lived CLI, except in its sandbox and gofer roles.
public enum FakeRunsc {
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
        struct Linux: Decodable {
            struct Namespace: Decodable {
                var type: String
                var path: String?
            }
            var namespaces: [Namespace]?
            var cgroupsPath: String?
        }
        var root: Root?
        var annotations: [String: String]?
        var linux: Linux?

        var networkNamespacePath: String? { linux?.namespaces?.first { $0.type == "network" }?.path }

        /// The sandbox to join, as runsc reads CRI's annotations.
        var joinsSandbox: String? {
            guard annotations?["io.kubernetes.cri.container-type"] == "container" else { return nil }
            return annotations?["io.kubernetes.cri.sandbox-id"]
        }
    }

    struct Failure: Error {
        let message: String
        let status: Int32
        init(_ message: String, status: Int32 = 1) {
            self.message = message
            self.status = status
        }
    }

    public static func main(_ argv: [String]) -> Int32 {
        let executable = ProcessIdentity.executablePath ?? argv.first ?? "fake-runsc"
        var globals: [String: String] = [:]
        var rest = Array(argv.dropFirst())
        // Global flags as runsc takes them: `--key=value`, or `--key value` for those that take
        // a value (how go-runc, and so containerd's runc shim, passes --root and --log).
        let valueFlags: Set<String> = ["root", "log", "log-format", "network", "platform", "debug-log", "criu"]
        while let first = rest.first, first.hasPrefix("--") {
            rest.removeFirst()
            let pair = first.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 {
                globals[pair[0]] = pair[1]
            } else if valueFlags.contains(pair[0]), let value = rest.first {
                rest.removeFirst()
                globals[pair[0]] = value
            } else {
                globals[pair[0]] = "true"
            }
        }
        guard let verb = rest.first else {
            Console.error("fake-runsc: missing subcommand")
            return 2
        }
        let root = globals["root"] ?? "/run/runsc"
        let faults = Faults(root: root)
        if faults.contains("hang-\(verb)") {
            while true { Sleep.seconds(3600) }
        }
        do {
            var arguments = Array(rest.dropFirst())
            if cliVerbsNamingAContainer.contains(verb) { try resolveContainerID(in: &arguments, root: root) }
            switch verb {
            case "create": try create(&arguments, root: root, executable: executable, globals: globals, faults: faults)
            case "start": try start(arguments, root: root, faults: faults)
            case "state": try printState(arguments, root: root)
            case "kill": try kill(arguments, root: root, faults: faults)
            case "wait": try wait(arguments, root: root)
            case "delete": try delete(arguments, root: root, faults: faults)
            case "ps": try ps(arguments, root: root)
            case "pause": try pauseOrResume(arguments, root: root, pause: true)
            case "resume": try pauseOrResume(arguments, root: root, pause: false)
            case "events": try events(arguments, root: root)
            case "exec":
                if faults.contains("fail-exec") { throw Failure("exec: fake fail-exec") }
                try exec(arguments, root: root, executable: executable, globals: globals)
            case "sandbox-main": return sandboxMain(arguments, root: root, faults: faults)
            case "container-main": return containerMain(arguments, root: root, faults: faults)
            case "exec-main": return execMain(arguments, root: root)
            case "gofer-main": return goferMain(arguments, root: root, faults: faults)
            default: throw Failure("unknown subcommand \"\(verb)\"", status: 2)
            }
            return 0
        } catch let failure as Failure {
            Console.error(failure.message)
            return failure.status
        } catch {
            Console.error("\(error)")
            return 1
        }
    }

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
                    sandboxID: sandboxID, consoleSocket: options.values["console-socket"], cgroupsPath: cgroupsPath), root: root)
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
        try save(
            State(id: id, bundle: bundle, status: "created", sandboxPid: sandbox, goferPid: gofer, sandboxID: id, cgroupsPath: cgroupsPath),
            root: root)
        // runsc since 2023 serves the sandbox's control channel on a socket file in its root,
        // which only `runsc delete` removes: the file a killed sandbox leaves behind.
        if let control = try? UnixSocket.listen(path: controlSocketPath(id, root: root), mode: 0o600, backlog: 1) {
            UnixSocket.close(control)
        }
        if let pidFile = options.values["pid-file"] {
            try Files.write(pidFile, "\(sandbox)")
        }
        if faults.contains("crash-on-create") {
            throw Failure("creating container: fake crash-on-create")
        }
    }

    static func start(_ arguments: [String], root: String, faults: Faults) throws {
        let id = try containerID(arguments)
        var state = try load(id, root: root)
        guard state.status == "created" else { throw Failure("cannot start container in state \(state.status)") }
        if faults.contains("fail-start") { throw Failure("starting container: fake fail-start") }
        if faults.contains("slow-start") { Sleep.seconds(2) }
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
        if faults.contains("unkillable-until-netns-down"), options.values["pid"] == nil {
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
        if let target = options.values["pid"].flatMap({ Int32($0) }) {
            guard processAlive(target) else { throw Failure("cannot signal process \(target): no such process") }
            ChildProcesses.signalUnreaped(target, signal)
            return
        }
        guard let pid = state.containerPid, state.status != "stopped", processAlive(state.sandboxPid) else {
            throw Failure("cannot signal container: container is not running")
        }
        if options.flags.contains("all") {
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
        if let cgroupsPath = state.cgroupsPath, !faults.contains("leave-cgroup") {
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
        Console.output(
            "{\"type\":\"stats\",\"id\":\"\(state.id)\",\"data\":{\"cpu\":{\"usage\":{\"total\":1000000,\"kernel\":0,\"user\":1000000}},\"memory\":{\"usage\":{\"usage\":4096,\"max\":8192}},\"pids\":{\"current\":1}}}")
    }

    // MARK: sandbox and gofer roles

    /// Waits for start (the state saying running), runs the container process, records its
    /// status and exits with it.
    static func sandboxMain(_ arguments: [String], root: String, faults: Faults) -> Int32 {
        guard let id = arguments.first else { return 2 }
        guard awaitCreated(id, root: root) else { return 1 }
        while true {
            guard let state = try? load(id, root: root) else { return 1 }  // deleted before start
            if state.status == "running" { break }
            Sleep.milliseconds(10)
        }
        guard var state = try? load(id, root: root),
              let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
              let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes)),
              !spec.process.args.isEmpty
        else { return 1 }
        var command = spec.process.args
        if faults.contains("ignore-sigterm") {
            // An ignored disposition survives exec: the process never sees SIGTERM.
            command = ["/bin/sh", "-c", "trap '' TERM; exec \"$0\" \"$@\""] + command
        }
        guard let pid = startContainerProcess(command, spec: spec, state: &state, root: root) else { return 127 }
        if faults.contains("unkillable-until-netns-down") { holdUntilNetworkDown(id, root: root, container: pid) }
        let status = ChildProcesses.waitBlocking(pid)
        // As in gVisor, the container's other processes do not outlive its init.
        ChildProcesses.signalGroup(pid, 9)
        var final = (try? load(id, root: root)) ?? state
        final.status = "stopped"
        final.exitStatus = Int32(status.code)
        try? save(final, root: root)
        return Int32(status.code)
    }

    /// unkillable-until-netns-down, the sandbox side: watches the pod's links; when they are all
    /// down, records it and delivers a kill that was held back. Returns when the container exited.
    static func holdUntilNetworkDown(_ id: String, root: String, container: Int32) {
        var recordedDown = false
        while processAlive(container) {
            guard let state = try? load(id, root: root) else { return }
            if !recordedDown, !networkLinksUp(state) {
                recordedDown = true
                record(root: root, "links-down")
            }
            if recordedDown, let signal = state.pendingSignal {
                ChildProcesses.signalGroup(container, signal)
                var cleared = state
                cleared.pendingSignal = nil
                try? save(cleared, root: root)
            }
            Sleep.milliseconds(20)
        }
    }

    /// Whether any non-loopback link of the container's network namespace is up (false when
    /// it has no namespace of its own, or it cannot be read).
    static func networkLinksUp(_ state: State) -> Bool {
        guard let bytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(bytes)),
            let path = spec.networkNamespacePath,
            let links = try? NetworkNamespace(path: path).links()
        else { return false }
        return links.contains { !$0.isLoopback && $0.isUp }
    }

    /// Appends a line to `<root>/fault-log` (what a fault saw, in order, for the tests).
    static func record(root: String, _ line: String) {
        guard let fd = try? FileDescriptor.openForAppend("\(Faults.directory(root: root))/fault-log") else { return }
        defer { FileDescriptor.close(fd) }
        try? FileDescriptor.writeAll(fd, Array("\(line)\n".utf8))
    }

    /// Starts a container's process with this process's stdio, in its own session and process
    /// group (so the whole container can be killed at once), marked so that tests find anything
    /// it leaves behind; recorded in the state. nil (state stopped, 127) if it cannot start.
    static func startContainerProcess(_ command: [String], spec: Spec, state: inout State, root: String) -> Int32? {
        let (path, args) = commandLine(command, bundle: state.bundle, spec: spec)
        let env = (spec.process.env ?? environment()) + ["WARDEN_FAKE_RUNSC_CONTAINER=\(root)/\(state.id)"]
        guard let pid = try? Spawn.spawn(
            path: path, arguments: args, environment: env, stdin: 0, stdout: 1, stderr: 2, newSession: true)
        else {
            state.status = "stopped"
            state.exitStatus = 127
            try? save(state, root: root)
            return nil
        }
        state.containerPid = pid
        try? save(state, root: root)
        return pid
    }

    /// As runsc does for a terminal: a new pty whose master goes to the console socket; the
    /// returned slave becomes the process's stdio.
    static func sendTerminal(to consoleSocket: String) throws -> Int32 {
        let pty = try Terminal.openPair()
        defer { FileDescriptor.close(pty.master) }
        let connection = try UnixSocket.connect(path: consoleSocket)
        defer { UnixSocket.close(connection) }
        try UnixSocket.sendDescriptor(connection, pty.master)
        return pty.slave
    }

    /// Runs `args` inside the bundle's rootfs (chroot), as a container would see it; a bundle
    /// without a populated rootfs (the driver's unit tests) runs it on the host.
    static func commandLine(_ args: [String], bundle: String, spec: Spec) -> (String, [String]) {
        let program = args.first ?? "/bin/true"
        let path = program.hasPrefix("/") ? program : "/bin/\(program)"
        let rootPath = spec.root?.path ?? "rootfs"
        let rootfs = rootPath.hasPrefix("/") ? rootPath : "\(bundle)/\(rootPath)"
        if FileDescriptor.exists("\(rootfs)/bin") {
            return ("/usr/sbin/chroot", [rootfs, path] + args.dropFirst())
        }
        return (path, Array(args.dropFirst()))
    }

    /// A subcontainer's process (started by `start` with its stdio): exits with the process,
    /// and takes it down if the sandbox dies first (nothing outlives the sandbox in gVisor).
    static func containerMain(_ arguments: [String], root: String, faults: Faults) -> Int32 {
        guard let id = arguments.first, var state = try? load(id, root: root),
            let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes))
        else { return 1 }
        guard let pid = startContainerProcess(spec.process.args, spec: spec, state: &state, root: root) else { return 127 }
        var status: Int32 = 137
        while true {
            if let exit = ChildProcesses.reap(pid) {
                status = Int32(exit.code)
                break
            }
            if !processAlive(state.sandboxPid) {
                ChildProcesses.signalGroup(pid, 9)
                _ = ChildProcesses.waitBlocking(pid)
                break
            }
            Sleep.milliseconds(20)
        }
        ChildProcesses.signalGroup(pid, 9)
        var final = (try? load(id, root: root)) ?? state
        final.status = "stopped"
        final.exitStatus = status
        try? save(final, root: root)
        return status
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
        FileDescriptor.remove(pidFile)
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

    static func execMain(_ arguments: [String], root: String) -> Int32 {
        guard arguments.count >= 4, let state = try? load(arguments[0], root: root),
            let processBytes = FileDescriptor.readAll(arguments[1]),
            let process = try? JSONDecoder().decode(Spec.Process.self, from: Data(processBytes)),
            let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes))
        else { return 126 }
        let (path, args) = commandLine(process.args, bundle: state.bundle, spec: spec)
        let env = (process.env ?? environment()) + ["WARDEN_FAKE_RUNSC_CONTAINER=\(root)/\(state.id)"]
        guard let pid = try? Spawn.spawn(path: path, arguments: args, environment: env, stdin: 0, stdout: 1, stderr: 2, newSession: true)
        else { return 127 }
        if !arguments[3].isEmpty { try? Files.write(arguments[3], "\(pid)") }
        try? Files.write(arguments[2], "\(ProcessIdentity.pid)")
        while true {
            if let exit = ChildProcesses.reap(pid) { return Int32(exit.code) }
            if !processAlive(state.sandboxPid) {
                ChildProcesses.signalGroup(pid, 9)
                return Int32(ChildProcesses.waitBlocking(pid).code)
            }
            Sleep.milliseconds(20)
        }
    }

    /// Lives as long as the sandbox (or forever with orphan-gofer).
    static func goferMain(_ arguments: [String], root: String, faults: Faults) -> Int32 {
        guard let id = arguments.first else { return 2 }
        guard awaitCreated(id, root: root) else { return 1 }
        while true {
            if !faults.contains("orphan-gofer") {
                guard let state = try? load(id, root: root), processAlive(state.sandboxPid) else { return 0 }
            }
            Sleep.milliseconds(100)
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
        "start", "state", "kill", "wait", "delete", "ps", "pause", "resume", "events", "exec",
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
    static func processAlive(_ pid: Int32) -> Bool {
        guard let stat = FileDescriptor.readAll("/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.first != "Z" && fields.first != "X"
    }

    static func environment() -> [String] { ["PATH=/usr/local/bin:/usr/bin:/bin"] }

    struct Options {
        /// Flags of the subcommands that take a value as the next argument.
        static let valueFlags: Set<String> = [
            "bundle", "pid-file", "console-socket", "format", "user-log", "interval", "process", "internal-pid-file", "pid",
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

    struct Faults {
        let names: Set<String>
        init(root: String) {
            var text = ProcessEnvironment.value("WARDEN_FAKE_RUNSC_FAULTS") ?? ""
            if let bytes = FileDescriptor.readAll("\(Self.directory(root: root))/faults") {
                text += "\n" + String(decoding: bytes, as: UTF8.self)
            }
            names = Set(text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).map(String.init))
        }
        func contains(_ name: String) -> Bool { names.contains(name) }

        /// Where a test put the `faults` file (and reads `fault-log`): `--root`, or up to two
        /// levels above it, as Warden gives each pod a root of its own under the configured
        /// one (`<root>/<namespace>/<pod>`).
        static func directory(root: String) -> String {
            var candidate = root
            for _ in 0..<3 {
                if FileDescriptor.exists(candidate + "/faults") { return candidate }
                guard let slash = candidate.lastIndex(of: "/"), slash > candidate.startIndex else { break }
                candidate = String(candidate[..<slash])
            }
            return root
        }
    }
}
