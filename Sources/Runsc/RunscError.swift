/// What went wrong with a runsc call, classified so the shim can decide (a container that
/// is already gone is not a Kill failure).
public enum RunscError: Error, Equatable, Sendable, CustomStringConvertible {
    /// runsc exited non-zero. `detail` is the tail of its stderr / log.
    case commandFailed(verb: String, exitStatus: UInt32, detail: String)
    /// runsc did not finish within its deadline; it was SIGKILLed and reaped.
    case timedOut(verb: String, after: Duration)
    /// The caller gave up (its task was cancelled); runsc was SIGKILLed and reaped.
    case cancelled(verb: String)
    /// The container does not exist (runsc: "does not exist", "not found").
    case notFound(verb: String, detail: String)
    /// The container has already stopped (runsc: "not running", "already stopped").
    case alreadyStopped(verb: String, detail: String)
    /// runsc's answer could not be understood.
    case invalidOutput(verb: String, detail: String)
    /// runsc could not be started at all.
    case spawnFailed(verb: String, detail: String)

    public var description: String {
        switch self {
        case .commandFailed(let verb, let status, let detail):
            "runsc \(verb) failed (exit status \(status)): \(detail)"
        case .timedOut(let verb, let after):
            "runsc \(verb) did not finish within \(after); killed"
        case .cancelled(let verb):
            "runsc \(verb) abandoned by its caller; killed"
        case .notFound(let verb, let detail):
            "runsc \(verb): container not found: \(detail)"
        case .alreadyStopped(let verb, let detail):
            "runsc \(verb): container already stopped: \(detail)"
        case .invalidOutput(let verb, let detail):
            "runsc \(verb): unexpected output: \(detail)"
        case .spawnFailed(let verb, let detail):
            "runsc \(verb): cannot start runsc: \(detail)"
        }
    }

    /// Classifies a failed call by the text runsc printed, as containerd's checkKillError
    /// does for runc. Texts seen from runsc 2022-12-19 and gVisor's shim.
    public static func classify(verb: String, exitStatus: UInt32, output: String) -> RunscError {
        let detail = lastMeaningfulLine(output)
        let lowered = output.lowercased()
        // runsc 2024 whose container's state file went with its delete while the call ran:
        // "loading container: open <root>/<id>_sandbox:<sandbox>.state: no such file or directory".
        let stateFileGone = lowered.contains("loading container") && lowered.contains("no such file or directory")
        if lowered.contains("does not exist") || lowered.contains("not found") || lowered.contains("no such container")
            || stateFileGone
        {
            return .notFound(verb: verb, detail: detail)
        }
        if lowered.contains("not running") || lowered.contains("already stopped") || lowered.contains("is stopped")
            || lowered.contains("no such process")
        {
            return .alreadyStopped(verb: verb, detail: detail)
        }
        return .commandFailed(verb: verb, exitStatus: exitStatus, detail: detail + hint(lowered))
    }

    /// What an operator can do about a failure runsc's own text does not explain.
    private static func hint(_ lowered: String) -> String {
        if lowered.contains("cannot run with network enabled in root network namespace") {
            // runsc's root-namespace check reads /proc/sys/net/core/rmem_default, which Linux
            // 6.10 and later show in every namespace.
            return " (runsc's --network=sandbox misreads the pod's namespace as the host's on Linux 6.10 and "
                + "later up to runsc 2024-07-29, google/gvisor#10704: use a newer runsc, or set network = \"host\" "
                + "or \"none\" under [runsc_config] in the Warden config)"
        }
        return ""
    }

    private static func lastMeaningfulLine(_ output: String) -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        let lines = output.split(separator: "\n").map { line in
            String(line.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
        }.filter { !$0.isEmpty }
        guard let last = lines.last else { return "(no output)" }
        return String(last.prefix(2000))
    }
}
