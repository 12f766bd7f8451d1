// warden: the operator CLI (design.md §7; issue 14).
import Config
import Foundation
import LinuxSys
import WardenNode

let usage = """
    usage:
      warden config check [FILE]        validate a warden.toml (default \(WardenConfig.defaultPath))
      warden status [--json]            every Warden shim on this node: pod, containers, age, memory, last termination
      warden metrics [--dir DIR]        every shim's metrics as one Prometheus exposition
      warden doctor [--json] [SCOPE]    what stuck pods of any runtime left behind, and why each is stale
      warden sweep [--dry-run] [--json] [SCOPE]
                                        clear what doctor finds (each item re-checked first, bounded)
    SCOPE (each repeatable; defaults in brackets):
      --state DIR        containerd's state directory [/run/containerd]
      --runsc-root DIR   a runsc root [warden.toml's root, and /run/containerd/runc for the runc shim]
      --address SOCKET   containerd's socket, to list tasks [/run/containerd/containerd.sock]
      --config FILE      warden.toml [\(WardenConfig.defaultPath)]
    """

struct Arguments {
    var words: [String]
    var flags: [String: [String]] = [:]
    var switches: Set<String> = []

    init(_ raw: [String]) throws {
        words = []
        var index = 0
        let valued: Set<String> = ["--state", "--runsc-root", "--address", "--config", "--dir"]
        while index < raw.count {
            let word = raw[index]
            if valued.contains(word) {
                guard index + 1 < raw.count else { throw UsageError("\(word) needs a value") }
                flags[word, default: []].append(raw[index + 1])
                index += 2
            } else if word.hasPrefix("--") {
                guard ["--json", "--dry-run"].contains(word) else { throw UsageError("unknown option \(word)") }
                switches.insert(word)
                index += 1
            } else {
                words.append(word)
                index += 1
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func loadConfig(_ arguments: Arguments) -> WardenConfig {
    let path = arguments.flags["--config"]?.last ?? WardenConfig.defaultPath
    guard FileDescriptor.exists(path) else { return WardenConfig() }
    do {
        return try WardenConfig.load(path: path) { FileDescriptor.readAll($0) }
    } catch {
        Console.error("warden: \(error)")
        LinuxSys.exit(1)
    }
}

func scope(_ arguments: Arguments) -> DoctorScope {
    let config = loadConfig(arguments)
    return DoctorScope(
        containerdStates: arguments.flags["--state"] ?? ["/run/containerd"],
        runscRoots: arguments.flags["--runsc-root"] ?? [config.root, "/run/containerd/runc"],
        containerdAddresses: arguments.flags["--address"] ?? ["/run/containerd/containerd.sock"])
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

let arguments: Arguments
do {
    arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
} catch {
    Console.error("warden: \(error)\n\(usage)")
    LinuxSys.exit(2)
}
let json = arguments.switches.contains("--json")

switch arguments.words.first {
case "config" where arguments.words.count >= 2 && arguments.words[1] == "check" && arguments.words.count <= 3:
    let path = arguments.words.count == 3 ? arguments.words[2] : WardenConfig.defaultPath
    do {
        let config = try WardenConfig.load(path: path) { FileDescriptor.readAll($0) }
        Console.output(
            "\(path): ok (runsc \(config.runsc), root \(config.root), stop_deadline \(config.deadlines.stopDeadline), seccomp \(config.seccompMode.rawValue), metrics \(config.metricsDirectory.isEmpty ? "off" : config.metricsDirectory))"
        )
        LinuxSys.exit(0)
    } catch {
        Console.error("warden: \(error)")
        LinuxSys.exit(1)
    }

case "status" where arguments.words.count == 1:
    let shims = Shims.status()
    if json {
        printJSON(shims)
        LinuxSys.exit(0)
    }
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
        Console.output(lines.joined(separator: "\n"))
    }

case "metrics" where arguments.words.count == 1:
    let directory = arguments.flags["--dir"]?.last ?? loadConfig(arguments).metricsDirectory
    guard !directory.isEmpty else {
        Console.error("warden: metrics are off ([metrics] dir = \"\")")
        LinuxSys.exit(1)
    }
    let files = Directories.entries(directory).filter { $0.hasSuffix(".prom") }.sorted()
    let merged = Exposition.merge(files.compactMap { FileDescriptor.readText(directory + "/" + $0) })
    if !merged.isEmpty { Console.output(String(merged.dropLast())) }

case "doctor" where arguments.words.count == 1:
    let findings = Doctor.examine(scope(arguments))
    if json {
        printJSON(findings)
    } else {
        Console.output(findings.isEmpty ? "nothing stale found" : findings.map(describe).joined(separator: "\n"))
    }
    LinuxSys.exit(findings.isEmpty ? 0 : 3)

case "sweep" where arguments.words.count == 1:
    let outcomes = Sweep.run(scope(arguments), dryRun: arguments.switches.contains("--dry-run"))
    if json {
        printJSON(outcomes)
    } else if outcomes.isEmpty {
        Console.output("nothing stale found")
    } else {
        for outcome in outcomes {
            let verdict = arguments.switches.contains("--dry-run") ? "would" : outcome.done ? "done:" : "FAILED:"
            Console.output("\(describe(outcome.finding))\n    \(verdict) \(outcome.action) (\(outcome.detail))")
        }
    }
    LinuxSys.exit(outcomes.allSatisfy { $0.done || arguments.switches.contains("--dry-run") || $0.action == "none" } ? 0 : 1)

default:
    Console.error(usage)
    LinuxSys.exit(2)
}
