// fake-runsc's fault table: every fault a test can inject, what it does, and where a test
// names them (WARDEN_FAKE_RUNSC_FAULTS, or a `faults` file at or above --root). The verbs and
// roles ask `faults.contains(.x)`; nothing else reads the names.

import LinuxSys

extension FakeRunsc {
    enum Fault: String, CaseIterable {
        /// create leaves the sandbox and gofer running, then fails (runsc crashing mid-create).
        case crashOnCreate = "crash-on-create"
        /// start fails after create succeeded: a task no runsc verb can start.
        case failStart = "fail-start"
        /// start takes 2 s (a Kill or Delete arriving while Start is in flight).
        case slowStart = "slow-start"
        /// exec fails.
        case failExec = "fail-exec"
        /// The container's init ignores SIGTERM (the ladder must escalate).
        case ignoreSigterm = "ignore-sigterm"
        /// A kill takes effect only once the pod's links are down (the field's wedge: a sentry
        /// holding packet sockets does not stop while its netns is up).
        case unkillableUntilNetnsDown = "unkillable-until-netns-down"
        /// delete leaves the container's cgroup behind.
        case leaveCgroup = "leave-cgroup"
        /// The gofer outlives its sandbox.
        case orphanGofer = "orphan-gofer"
        /// create writes a pid that names no process to --pid-file (a runtime that lies): the
        /// shim above it lists a running task whose process does not exist.
        case liePid = "lie-pid"
        /// A runsc from before April 2025 (both of Debian's): no `update` subcommand in
        /// `runsc help`, and `update` unknown.
        case noUpdate = "no-update"
        /// The sandbox, once a file `oom-now` appears beside the faults file, lowers its memory
        /// cgroup's limit to just above what it uses and allocates until the kernel's OOM
        /// killer kills it: a real OOM kill, counted in the cgroup's `oom_kill`.
        case oomKillSandbox = "oom-kill-sandbox"
        /// The sandbox, once a file `panic-now` appears beside the faults file, panics as the
        /// sentry does: Go's crash output to its `--panic-log` (stderr without one), its
        /// container killed, exit status 2.
        case panicSandbox = "panic-sandbox"
        /// No control socket recorded in the state (runsc 2022's abstract socket): the shim
        /// must use the CLI for every call.
        case noControl = "no-control"
        /// The control server reads each call and never answers (a wedged sentry).
        case controlHang = "control-hang"
        /// The control server closes each connection once it has read the call.
        case controlClose = "control-close"
        /// The control server answers each call with bytes that are not JSON.
        case controlGarbage = "control-garbage"
        /// The control server answers each call with success and a result of the wrong type.
        case controlWrong = "control-wrong"
    }

    /// The subcommands a `hang-<verb>` fault can hang (it then never returns).
    static let hangableVerbs: Set<String> = [
        "create", "start", "state", "kill", "wait", "delete", "ps", "pause", "resume", "events", "exec", "update", "help",
    ]

    struct Faults {
        private let faults: Set<Fault>
        private let hungVerbs: Set<String>

        /// Throws, naming it, for a fault fake-runsc does not know: a misspelt fault would
        /// otherwise leave a test running with no fault at all and passing for the wrong reason.
        init(root: String) throws(Failure) {
            var text = ProcessEnvironment.value("WARDEN_FAKE_RUNSC_FAULTS") ?? ""
            if let bytes = FileDescriptor.readAll("\(Self.directory(root: root))/faults") {
                text += "\n" + String(decoding: bytes, as: UTF8.self)
            }
            var faults: Set<Fault> = []
            var hungVerbs: Set<String> = []
            for name in text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).map(String.init) {
                if let fault = Fault(rawValue: name) {
                    faults.insert(fault)
                } else if name.hasPrefix("hang-"), Self.isHangable(String(name.dropFirst(5))) {
                    hungVerbs.insert(String(name.dropFirst(5)))
                } else {
                    let known = Fault.allCases.map(\.rawValue) + ["hang-<verb>"]
                    throw Failure("unknown fault \"\(name)\" (known: \(known.joined(separator: ", ")))", status: 2)
                }
            }
            self.faults = faults
            self.hungVerbs = hungVerbs
        }

        private static func isHangable(_ verb: String) -> Bool { FakeRunsc.hangableVerbs.contains(verb) }

        func contains(_ fault: Fault) -> Bool { faults.contains(fault) }
        func hangs(_ verb: String) -> Bool { hungVerbs.contains(verb) }

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
