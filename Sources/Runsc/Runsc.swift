#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Deadlines
import LinuxSys
import Supervisor
import Synchronization

/// How a runsc call ended, for `RunscConfiguration.onCallEnded`.
public enum CallOutcome: Sendable {
    case succeeded, failed
    /// Killed at its deadline.
    case timedOut
}

/// How runsc is invoked: the binary, its `--root`, and the `[runsc_config]` flags added to
/// every call (as gVisor's runsc.toml does), in a fixed order so argv is deterministic.
public struct RunscConfiguration: Sendable {
    public var binary: String
    public var root: String
    /// `key = value` pairs from `[runsc_config]`, passed as `--key=value`.
    public var flags: [(key: String, value: String)]
    /// Environment of runsc processes.
    public var environment: [String]
    /// Directory for the files that capture each call's output (never pipes: runsc create's
    /// daemonized children inherit them, and a pipe read to EOF would never end).
    public var scratchDirectory: String
    /// Deadline of every call except create/start/exec/wait (`runsc_call_timeout`).
    public var callTimeout: Duration
    /// Deadline of create and start (`create_timeout`).
    public var createTimeout: Duration
    /// Told of every call when it ends: verb, time taken, whether it succeeded (exit 0).
    public var onCallEnded: @Sendable (_ verb: String, _ took: Duration, _ outcome: CallOutcome) -> Void = { _, _, _ in }

    public init(
        binary: String, root: String, flags: [(key: String, value: String)] = [], environment: [String] = [],
        scratchDirectory: String, callTimeout: Duration = .seconds(5), createTimeout: Duration = .seconds(60)
    ) {
        self.binary = binary
        self.root = root
        self.flags = flags.sorted { $0.key < $1.key }
        self.environment = environment
        self.scratchDirectory = scratchDirectory
        self.callTimeout = callTimeout
        self.createTimeout = createTimeout
    }
}

/// The state `runsc state` reports.
public struct RunscState: Decodable, Equatable, Sendable {
    public var id: String
    public var pid: Int32
    public var status: String

    public init(id: String, pid: Int32, status: String) {
        self.id = id
        self.pid = pid
        self.status = status
    }
}

/// The descriptors a container process gets as stdio, through runsc create/start/exec.
public struct ContainerStdio: Sendable {
    public var stdin: Int32
    public var stdout: Int32
    public var stderr: Int32

    public init(stdin: Int32, stdout: Int32, stderr: Int32) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// `runsc events --stats` output (runc's event shape).
struct RunscEvent: Decodable {
    var data: RunscStats
}

/// Resource usage as runsc reports it (gVisor runsc/boot/events.go).
public struct RunscStats: Decodable, Equatable, Sendable {
    public struct CPUUsage: Decodable, Equatable, Sendable {
        public var kernel: UInt64?
        public var user: UInt64?
        public var total: UInt64?
        public var percpu: [UInt64]?
    }
    public struct CPU: Decodable, Equatable, Sendable { public var usage: CPUUsage? }
    public struct MemoryEntry: Decodable, Equatable, Sendable {
        public var limit: UInt64?
        public var usage: UInt64?
        public var max: UInt64?
        public var failcnt: UInt64?
    }
    public struct Memory: Decodable, Equatable, Sendable {
        public var cache: UInt64?
        public var usage: MemoryEntry?
        public var swap: MemoryEntry?
        public var kernel: MemoryEntry?
        public var raw: [String: UInt64]?
    }
    public struct Pids: Decodable, Equatable, Sendable {
        public var current: UInt64?
        public var limit: UInt64?
    }
    public var cpu: CPU?
    public var memory: Memory?
    public var pids: Pids?
}

/// The `msg` fields of runsc's JSON log (`--log-format=json`), one per line.
enum RunscLog {
    static func messages(_ bytes: [UInt8]) -> String {
        struct Line: Decodable { var msg: String? }
        var result = ""
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            if let decoded = try? JSONDecoder().decode(Line.self, from: Data(line)), let msg = decoded.msg {
                result += msg + "\n"
            }
        }
        return result
    }
}

/// One typed method per runsc subcommand. Every call runs under a deadline: at expiry the
/// runsc process is SIGKILLed through its pidfd and reaped before the error is thrown, so a
/// wedged runsc never holds a caller, and never lingers.
public struct Runsc: Sendable {
    public let configuration: RunscConfiguration
    private let supervisor: Supervisor
    private let counter = CallCounter()

    public init(configuration: RunscConfiguration, supervisor: Supervisor) {
        self.configuration = configuration
        self.supervisor = supervisor
    }

    /// `--root` and the configured flags, then the per-call log flags.
    public func globalArguments(log: String? = nil) -> [String] {
        var arguments = ["--root=\(configuration.root)"]
        arguments += configuration.flags.map { "--\($0.key)=\($0.value)" }
        if let log { arguments += ["--log=\(log)", "--log-format=json"] }
        return arguments
    }

    public func state(_ id: String) async throws(RunscError) -> RunscState {
        let output = try await run("state", [id], timeout: configuration.callTimeout)
        do {
            return try JSONDecoder().decode(RunscState.self, from: Data(output.utf8))
        } catch {
            throw .invalidOutput(verb: "state", detail: "\(error): \(output.prefix(200))")
        }
    }

    /// `runsc kill`: the container's init, every process (`all`), or one process by its pid
    /// inside the sandbox (`pid`, for execs). Bounded by `timeout` (default `runsc_call_timeout`).
    public func kill(
        _ id: String, signal: Int32, all: Bool = false, pid: Int32? = nil, timeout: Duration? = nil
    ) async throws(RunscError) {
        var arguments = all ? ["--all"] : []
        if let pid { arguments.append("--pid=\(pid)") }
        _ = try await run("kill", arguments + [id, String(signal)], timeout: timeout ?? configuration.callTimeout)
    }

    /// `runsc delete`, bounded by `timeout` (default `runsc_call_timeout`).
    public func delete(_ id: String, force: Bool = false, timeout: Duration? = nil) async throws(RunscError) {
        _ = try await run("delete", (force ? ["--force"] : []) + [id], timeout: timeout ?? configuration.callTimeout)
    }

    /// `runsc create`: the sandbox (and gofer) are daemonized; the sandbox pid is written to
    /// `pidFile` for the caller to adopt. Bounded by `create_timeout`.
    /// The root container's stdio is that of `runsc create` (a subcontainer's, of `runsc start`);
    /// with a terminal, runsc sends the pty master to `consoleSocket` instead.
    /// `panicLog`: where the sandbox and its gofer write Go's crash output (`--panic-log`, a
    /// global flag both runsc releases have; runsc opens it for appending and hands it to the
    /// sandbox as its stderr for runtime messages). Only a sandbox's own create passes it.
    public func create(
        _ id: String, bundle: String, pidFile: String, consoleSocket: String? = nil, stdio: ContainerStdio? = nil,
        panicLog: String? = nil
    ) async throws(RunscError) {
        var arguments = ["--bundle", bundle, "--pid-file", pidFile]
        if let consoleSocket { arguments += ["--console-socket", consoleSocket] }
        _ = try await run(
            "create", arguments + [id], timeout: configuration.createTimeout, stdio: stdio,
            globals: panicLog.map { ["--panic-log=\($0)"] } ?? [])
    }

    /// `runsc exec --detach`: runsc leaves a `runsc-exec` process (pid in `pidFile`) that
    /// exits with the exec's status; `internalPidFile` gets the process's pid inside the sandbox.
    public func exec(
        _ id: String, processFile: String, pidFile: String, internalPidFile: String, consoleSocket: String? = nil,
        stdio: ContainerStdio? = nil
    ) async throws(RunscError) {
        var arguments = ["--detach", "--process", processFile, "--pid-file", pidFile, "--internal-pid-file", internalPidFile]
        if let consoleSocket { arguments += ["--console-socket", consoleSocket] }
        _ = try await run("exec", arguments + [id], timeout: configuration.createTimeout, stdio: stdio)
    }

    /// `runsc events --stats`: one sample of the container's resource usage.
    public func stats(_ id: String) async throws(RunscError) -> RunscStats {
        let output = try await run("events", ["--stats", id], timeout: configuration.callTimeout)
        do {
            return try JSONDecoder().decode(RunscEvent.self, from: Data(output.utf8)).data
        } catch {
            throw .invalidOutput(verb: "events", detail: "\(error): \(output.prefix(200))")
        }
    }

    /// `runsc wait`: the container's exit status. Unbounded unless `timeout` is given; the
    /// shim never relies on it alone (it also watches the sandbox pidfd).
    public func wait(_ id: String, timeout: Duration? = nil) async throws(RunscError) -> Int32 {
        struct WaitResult: Decodable { var exitStatus: Int32 }
        let output = try await run("wait", [id], timeout: timeout)
        do {
            return try JSONDecoder().decode(WaitResult.self, from: Data(output.utf8)).exitStatus
        } catch {
            throw .invalidOutput(verb: "wait", detail: "\(error): \(output.prefix(200))")
        }
    }

    public func start(_ id: String, stdio: ContainerStdio? = nil) async throws(RunscError) {
        _ = try await run("start", [id], timeout: configuration.createTimeout, stdio: stdio)
    }

    public func pause(_ id: String) async throws(RunscError) {
        _ = try await run("pause", [id], timeout: configuration.callTimeout)
    }

    public func resume(_ id: String) async throws(RunscError) {
        _ = try await run("resume", [id], timeout: configuration.callTimeout)
    }

    /// `runsc update --resources=- ID` (runsc since April 2025): the container's new resources,
    /// OCI `LinuxResources` JSON, on stdin. Bounded by `runsc_call_timeout`.
    public func update(_ id: String, resourcesJSON: [UInt8]) async throws(RunscError) {
        let inputPath = "\(configuration.scratchDirectory)/runsc-\(ProcessIdentity.pid)-\(counter.next())-update.json"
        defer { Files.remove(inputPath) }
        do throws(Errno) {
            try Files.write(inputPath, resourcesJSON, mode: 0o600)
        } catch {
            throw .spawnFailed(verb: "update", detail: "writing the resources to \(inputPath): \(error)")
        }
        _ = try await run("update", ["--resources=-", id], timeout: configuration.callTimeout, stdinPath: inputPath)
    }

    /// The subcommands this runsc lists in `runsc help` (each "\t<name>  <summary>" line),
    /// bounded by `runsc_call_timeout`: how the shim learns whether `update` exists.
    public func subcommands() async throws(RunscError) -> Set<String> {
        Self.subcommands(inHelp: try await run("help", [], timeout: configuration.callTimeout))
    }

    /// The first line of `runsc --version` ("runsc version 0.0~20240729.0"), bounded by
    /// `runsc_call_timeout`.
    public func version() async throws(RunscError) -> String {
        let output = try await run("--version", [], timeout: configuration.callTimeout)
        return output.split(separator: "\n").first.map(String.init) ?? "runsc (no version printed)"
    }

    static func subcommands(inHelp text: String) -> Set<String> {
        var names: Set<String> = []
        for line in text.split(separator: "\n") where line.first == "\t" {
            if let name = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first { names.insert(String(name)) }
        }
        return names
    }

    /// Pids inside the container (`runsc ps --format=json`).
    public func ps(_ id: String) async throws(RunscError) -> [Int32] {
        let output = try await run("ps", ["--format=json", id], timeout: configuration.callTimeout)
        do {
            return try JSONDecoder().decode([Int32].self, from: Data(output.utf8))
        } catch {
            throw .invalidOutput(verb: "ps", detail: "\(error): \(output.prefix(200))")
        }
    }

    /// The files runsc keeps under this configuration's root (RunscRoot: no process needed).
    public var stateDirectory: RunscRoot { RunscRoot(configuration.root) }

    @discardableResult
    public func removeState(_ id: String) -> [String] { stateDirectory.removeState(id) }
    public func removeSandboxState(_ sandboxID: String) -> [String] { stateDirectory.removeSandboxState(sandboxID) }
    public func removeStaleSandboxLocks(_ sandboxID: String) -> [String] { stateDirectory.removeStaleSandboxLocks(sandboxID) }
    public func hasState(_ id: String) -> Bool { stateDirectory.hasState(id) }
    public static func controlSocketName(_ sandboxID: String) -> String { RunscRoot.controlSocketName(sandboxID) }

    /// Runs `runsc <global flags> <verb> <arguments>` and returns its stdout.
    /// A nil timeout means unbounded (only `wait` may be, and its caller races it).
    /// With `stdio`, runsc runs with the container's stdio (what create/start/exec hand to the
    /// sandbox) and its own messages go to a JSON log file, read back if it fails.
    public func run(
        _ verb: String, _ arguments: [String], timeout: Duration?, stdio: ContainerStdio? = nil, stdinPath: String? = nil,
        globals: [String] = []
    ) async throws(RunscError) -> String {
        let callNumber = counter.next()
        let began = ContinuousClock.now
        var callOutcome = CallOutcome.failed
        defer { configuration.onCallEnded(verb, .now - began, callOutcome) }
        let base = "\(configuration.scratchDirectory)/runsc-\(ProcessIdentity.pid)-\(callNumber)-\(verb)"
        let outPath = base + ".out"
        let errPath = base + ".err"
        let logPath = base + ".log"
        defer {
            Files.remove(outPath)
            Files.remove(errPath)
            Files.remove(logPath)
        }
        let child: Child
        do throws(Errno) {
            if let stdio {
                child = try supervisor.spawn(
                    path: configuration.binary, arguments: globalArguments(log: logPath) + globals + [verb] + arguments,
                    environment: configuration.environment, stdin: stdio.stdin, stdout: stdio.stdout,
                    stderr: stdio.stderr)
            } else {
                let null = try FileDescriptor.open(stdinPath ?? "/dev/null")  // stdin
                defer { FileDescriptor.close(null) }
                let out = try FileDescriptor.open(outPath, forWriting: true)
                defer { FileDescriptor.close(out) }
                let err = try FileDescriptor.open(errPath, forWriting: true)
                defer { FileDescriptor.close(err) }
                child = try supervisor.spawn(
                    path: configuration.binary, arguments: globalArguments() + globals + [verb] + arguments,
                    environment: configuration.environment, stdin: null, stdout: out, stderr: err)
            }
        } catch {
            throw .spawnFailed(verb: verb, detail: "\(configuration.binary): \(error)")
        }
        let supervisor = self.supervisor
        let outcome: ChildOutcome
        do {
            outcome = try await withDeadline(timeout.map { .now + $0 }, onTimeout: {
                RunscError.timedOut(verb: verb, after: timeout ?? .zero)
            }) {
                await supervisor.wait(child)
            }
        } catch {
            // Deadline or cancellation: the call must not outlive its caller.
            _ = try? supervisor.signal(child, 9)
            _ = await waitAtMost(.seconds(2)) { await supervisor.wait(child) }
            supervisor.release(child)
            if let runscError = error as? RunscError {
                if case .timedOut = runscError { callOutcome = .timedOut }
                throw runscError
            }
            throw .cancelled(verb: verb)
        }
        supervisor.release(child)
        let stdout = String(decoding: FileDescriptor.readAll(outPath) ?? [], as: UTF8.self)
        switch outcome {
        case .exited(.exited(0)):
            callOutcome = .succeeded
            return stdout
        case .exited(let status):
            var stderr = String(decoding: FileDescriptor.readAll(errPath) ?? [], as: UTF8.self)
            if stdio != nil { stderr += RunscLog.messages(FileDescriptor.readAll(logPath) ?? []) }
            throw RunscError.classify(verb: verb, exitStatus: status.code, output: stderr + "\n" + stdout)
        case .exitedWithoutStatus, .abandoned:
            throw .commandFailed(verb: verb, exitStatus: 255, detail: "runsc exit status unavailable")
        }
    }
}

private final class CallCounter: Sendable {
    private let value = Mutex<UInt64>(0)
    func next() -> UInt64 {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}
