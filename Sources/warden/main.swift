// warden: the operator CLI (design.md §7; issue 14), on swift-argument-parser. A separate
// binary: a pod's shim pays nothing for it.
import ArgumentParser
import Config
import Foundation
import LinuxSys
import ShimLayout
import WardenNode

struct Warden: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warden",
        abstract: "Operate Warden on a node: its shims, their metrics, and what stuck pods of any runtime left behind.",
        discussion: """
            Shell completion: warden --generate-completion-script bash > /etc/bash_completion.d/warden
            (zsh and fish too).
            """,
        subcommands: [ConfigCommand.self, Status.self, Metrics.self, Doctor.self, Sweep.self])
}

/// Where warden.toml is (its `root` and `[metrics] dir` are the defaults below).
struct ConfigOption: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("warden.toml.", valueName: "file"))
    var path: String = WardenConfig.defaultPath

    /// The file's settings, the defaults if it does not exist; a file that does not parse ends the command.
    func load() throws -> WardenConfig {
        guard FileDescriptor.exists(path) else { return WardenConfig() }
        do {
            return try WardenConfig.load(path: path) { FileDescriptor.readAll($0) }
        } catch {
            Console.error("warden: \(error)")
            throw ExitCode(1)
        }
    }
}

/// What doctor and sweep look at; each option repeatable.
struct ScopeOptions: ParsableArguments {
    @Option(name: .customLong("state"), help: ArgumentHelp("containerd's state directory [/run/containerd].", valueName: "dir"))
    var states: [String] = []
    @Option(
        name: .customLong("runsc-root"),
        help: ArgumentHelp("A runsc root [warden.toml's root, and /run/containerd/runc for the runc shim].", valueName: "dir"))
    var runscRoots: [String] = []
    @Option(
        name: .customLong("address"),
        help: ArgumentHelp("containerd's socket, to list tasks [/run/containerd/containerd.sock].", valueName: "socket"))
    var addresses: [String] = []
    @OptionGroup var config: ConfigOption

    func scope() throws -> DoctorScope {
        let config = try config.load()
        return DoctorScope(
            containerdStates: states.isEmpty ? ["/run/containerd"] : states,
            runscRoots: runscRoots.isEmpty ? [config.root, "/run/containerd/runc"] : runscRoots,
            containerdAddresses: addresses.isEmpty ? ["/run/containerd/containerd.sock"] : addresses)
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with warden.toml.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a warden.toml: a bad key or value is named with its line.",
            discussion: "Example: warden config check /etc/containerd/warden.toml")
        @Argument(help: ArgumentHelp("The file [\(WardenConfig.defaultPath)].", valueName: "file"))
        var path: String = WardenConfig.defaultPath

        func run() throws {
            do {
                let config = try WardenConfig.load(path: path) { FileDescriptor.readAll($0) }
                Console.output(
                    "\(path): ok (runsc \(config.runsc), root \(config.root), stop_deadline \(config.deadlines.stopDeadline), seccomp \(config.seccompMode.rawValue), metrics \(config.metricsDirectory.isEmpty ? "off" : config.metricsDirectory))"
                )
            } catch {
                Console.error("warden: \(error)")
                throw ExitCode(1)
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every Warden shim on this node: pod, containers, age, memory, last termination, last crash.",
        discussion: "Examples: warden status; warden status --json")
    @Flag(help: "JSON instead of text.") var json = false
    @OptionGroup var config: ConfigOption

    func run() throws {
        let shims = Shims.status()
        if json { return printJSON(shims) }
        if shims.isEmpty { Console.output("no Warden shim runs on this node") }
        for shim in shims {
            var lines = [
                "shim pid \(shim.pid)\(shim.helperPid.map { " (spawn helper \($0))" } ?? "")  pod \(shim.namespace)/\(shim.pod)  age \(age(shim.ageSeconds))  RSS \(megabytes(shim.rssKiB))  PSS \(megabytes(shim.pssKiB))"
            ]
            for (container, state) in shim.containers.sorted(by: { $0.key < $1.key }) { lines.append("  container \(container): \(state)") }
            if shim.containers.isEmpty { lines.append(shim.metricsFile == nil ? "  (no metrics file: containers unknown)" : "  no containers") }
            let execs = shim.tasksByState.values.reduce(0, +) - shim.containers.count
            if execs > 0 { lines.append("  execs: \(execs)") }
            if let last = shim.lastTermination {
                lines.append(
                    "  last termination: sandbox \(last.sandbox), \(last.reason), \(String(format: "%.2f", last.seconds)) s, \(last.outcome)")
            }
            if let crash = shim.lastCrash { lines.append("  last crash: \(Crashes.describe(crash))") }
            Console.output(lines.joined(separator: "\n"))
        }
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every shim's metrics as one Prometheus exposition.",
        discussion: "Example: warden metrics --dir /run/warden/metrics | grep warden_termination")
    @Option(help: ArgumentHelp("The metrics directory [warden.toml's [metrics] dir].", valueName: "dir"))
    var dir: String?
    @OptionGroup var config: ConfigOption

    func run() throws {
        let directory = try dir ?? config.load().metricsDirectory
        guard !directory.isEmpty else {
            Console.error("warden: metrics are off ([metrics] dir = \"\")")
            throw ExitCode(1)
        }
        let files = Directories.entries(directory).filter { $0.hasSuffix(ShimFiles.metricsExtension) }.sorted()
        let merged = Exposition.merge(files.compactMap { FileDescriptor.readText(directory + "/" + $0) })
        if !merged.isEmpty { Console.output(String(merged.dropLast())) }
    }
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What stuck pods of any runtime left behind, each with its owner and why it is stale.",
        discussion: """
            Exit status: 0 when nothing is stale, 3 when something is.
            Examples: warden doctor; warden doctor --json --state /run/containerd --runsc-root /run/containerd/runc/k8s.io
            """)
    @Flag(help: "JSON instead of text.") var json = false
    @OptionGroup var scope: ScopeOptions

    func run() throws {
        let findings = WardenNode.Doctor.examine(try scope.scope())
        // Why pods died, from the records their shims left (kept after the shim is gone).
        let crashes = Crashes.records(in: try scope.config.load().metricsDirectory)
        if json {
            printJSON(findings)
        } else {
            Console.output(findings.isEmpty ? "nothing stale found" : findings.map(describe).joined(separator: "\n"))
            if !crashes.isEmpty {
                Console.output("sandbox crashes (newest first):\n" + crashes.map { "  " + Crashes.describe($0) }.joined(separator: "\n"))
            }
        }
        if !findings.isEmpty { throw ExitCode(3) }
    }
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Clear what doctor finds: each item examined again first, acted on only if still stale, bounded.",
        discussion: """
            Exit status: 0 when every item was cleared (or left alone as no longer stale), 1 otherwise.
            Examples: warden sweep --dry-run; warden sweep --json
            """)
    @Flag(name: .customLong("dry-run"), help: "Say what would be done; do nothing.") var dryRun = false
    @Flag(help: "JSON instead of text.") var json = false
    @OptionGroup var scope: ScopeOptions

    func run() throws {
        let outcomes = WardenNode.Sweep.run(try scope.scope(), dryRun: dryRun)
        if json {
            printJSON(outcomes)
        } else if outcomes.isEmpty {
            Console.output("nothing stale found")
        } else {
            for outcome in outcomes {
                let verdict = dryRun ? "would" : outcome.done ? "done:" : "FAILED:"
                Console.output("\(describe(outcome.finding))\n    \(verdict) \(outcome.action) (\(outcome.detail))")
            }
        }
        if !outcomes.allSatisfy({ $0.done || dryRun || $0.action == "none" }) { throw ExitCode(1) }
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = (try? encoder.encode(value)) ?? Data("null".utf8)
    Console.output(String(decoding: data, as: UTF8.self))
}

func megabytes(_ kib: Int) -> String { String(format: "%.1f MB", Double(kib) / 1024) }

func age(_ seconds: Int) -> String {
    seconds >= 3600 ? "\(seconds / 3600)h\(seconds % 3600 / 60)m" : seconds >= 60 ? "\(seconds / 60)m\(seconds % 60)s" : "\(seconds)s"
}

func describe(_ finding: Finding) -> String {
    "\(finding.kind.rawValue): \(finding.what)\n    owner: \(finding.owner)\n    why:   \(finding.why)"
}

Warden.main()
