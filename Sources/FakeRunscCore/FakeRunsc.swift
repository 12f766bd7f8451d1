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
        let valueFlags: Set<String> = ["root", "log", "log-format", "network", "platform", "debug-log", "criu", "panic-log"]
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
        if globals["version"] != nil, rest.isEmpty {
            // As `runsc --version`: what the shim names when it refuses an Update.
            let faultsNow = try? Faults(root: globals["root"] ?? "/run/runsc")
            Console.output("runsc version fake-\(faultsNow?.contains(.noUpdate) == true ? "20240729" : "20250401")\nspec: 1.1.0")
            return 0
        }
        guard let verb = rest.first else {
            Console.error("fake-runsc: missing subcommand")
            return 2
        }
        let root = globals["root"] ?? "/run/runsc"
        let faults: Faults
        do { faults = try Faults(root: root) } catch {
            Console.error("fake-runsc: \(error.message)")
            return 2
        }
        if !verb.hasSuffix("-main") { recordIfWatched(root: root, "cli \(verb)") }
        if faults.hangs(verb) {
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
            case "help": help(faults: faults)
            case "update":
                if faults.contains(.noUpdate) { throw Failure("unknown subcommand \"update\"", status: 2) }
                try update(arguments, root: root)
            case "exec":
                if faults.contains(.failExec) { throw Failure("exec: fake fail-exec") }
                try exec(arguments, root: root, executable: executable, globals: globals)
            case "sandbox-main": return sandboxMain(arguments, root: root, faults: faults, panicLog: globals["panic-log"])
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

    static func environment() -> [String] { ["PATH=/usr/local/bin:/usr/bin:/bin"] }
}
