// Crash reasons: why a sandbox or its gofer died when nobody asked it to. runsc writes Go's
// crash output (a sentry panic, a fatal error, a signal's goroutine dump) to the file its
// `--panic-log` names; the shim gives each sandbox's create one in its scratch directory and
// reads it, bounded, once the exit is published.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import ShimLayout

/// One crash as the shim logs it, counts it and shows it (`warden status`, `warden doctor`).
struct SandboxCrash: Sendable, Equatable, CustomStringConvertible {
    /// The `reason` label of `warden_sandbox_crashes_total`: a few values, never free text.
    enum Reason: String, Sendable, CaseIterable {
        /// `panic: …`: the sentry (or gofer) called panic.
        case panic
        /// `fatal error: …`: the Go runtime gave up (out of memory, a concurrent map write, …).
        case fatalError = "fatal_error"
        /// `SIGABRT: abort` and the like (Go's dump of a fatal signal), or killed by a signal
        /// the shim did not send.
        case signal
        /// The kernel's OOM killer (the sandbox cgroup's oom_kill count went up).
        case oom
        /// The gofer exited while its sandbox ran on.
        case gofer
        /// Something else in the panic log (a Go runtime message with no crash line).
        case runtime
    }

    var sandbox: String
    /// `runsc-sandbox` or the gofer's argv[0] (`runsc-gofer`).
    var process: String
    var pid: Int32
    /// `exited with status 2`, `killed by signal 9`.
    var status: String
    var reason: Reason
    /// The panic's first line, or what else is known (at most `detailLimit` characters).
    var detail: String
    /// Seconds since the epoch.
    var at: Double
    /// The panic log, while the shim keeps it (removed with the sandbox).
    var panicLog: String?

    var description: String {
        "sandbox \(sandbox) crashed: \(process) pid \(pid) \(status): \(detail) (reason \(reason.rawValue)"
            + (panicLog.map { ", panic log \($0)" } ?? "") + ")"
    }

    var record: CrashRecord {
        CrashRecord(sandbox: sandbox, process: process, pid: pid, status: status, reason: reason.rawValue, detail: detail, at: at)
    }

    /// How much of the panic log is read: the crash line comes first, the goroutine dump
    /// after it can be megabytes.
    static let readLimit = 64 << 10
    static let detailLimit = 240

    /// The crash line of Go's crash output and its reason; nil when there is none.
    static func crashLine(in log: [UInt8]) -> (reason: Reason, line: String)? {
        let text = String(decoding: log.prefix(readLimit), as: UTF8.self)
        var firstOther: String?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw).trimmingWhitespace
            guard !line.isEmpty else { continue }
            if line.hasPrefix("panic: ") { return (.panic, clipped(line)) }
            if line.hasPrefix("fatal error: ") { return (.fatalError, clipped(line)) }
            if isSignalLine(line) { return (.signal, clipped(line)) }
            if firstOther == nil { firstOther = line }
        }
        return firstOther.map { (.runtime, clipped($0)) }
    }

    /// Go's first line for a fatal signal: `SIGABRT: abort`, `SIGSEGV: segmentation violation`.
    private static func isSignalLine(_ line: String) -> Bool {
        guard line.hasPrefix("SIG"), let colon = line.firstIndex(of: ":") else { return false }
        return line[line.index(line.startIndex, offsetBy: 3)..<colon].allSatisfy { $0.isUppercase || $0.isNumber }
    }

    private static func clipped(_ line: String) -> String {
        line.count <= detailLimit ? line : String(line.prefix(detailLimit)) + "…"
    }

    static func now() -> Double {
        let now = WallClock.now()
        return Double(now.seconds) + Double(now.nanoseconds) / 1e9
    }

    static func describe(_ status: ExitStatus) -> String {
        switch status {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }

    /// Whether runsc-sandbox's exit was a crash, and which. Evidence, in order: a crash line
    /// in the panic log (whatever else happened: a sentry that panics while being stopped
    /// still crashed), an OOM kill, then a signal the shim did not send. A plain exit status
    /// is the pod's init's own (runsc-sandbox exits with it) and is no crash. Nor is a line
    /// of no crash kind after a stop the shim asked for: it is what runsc's helpers say when
    /// the sandbox is killed under them (runsc 2024's /proc umounter, killed during boot:
    /// `unable to read from the sync descriptor: 0, error EOF`, runsc/cmd/umount_unsafe.go).
    static func ofSandbox(
        _ sandbox: String, pid: Int32, status: ExitStatus, stopRequested: Bool, oomKills: UInt64, panicLog: [UInt8]?,
        panicLogPath: String?, at: Double
    ) -> SandboxCrash? {
        let described = describe(status)
        func crash(_ reason: Reason, _ detail: String) -> SandboxCrash {
            SandboxCrash(
                sandbox: sandbox, process: "runsc-sandbox", pid: pid, status: described, reason: reason, detail: detail, at: at,
                panicLog: panicLogPath)
        }
        if let panicLog, let (reason, line) = crashLine(in: panicLog), reason != .runtime || !stopRequested {
            return crash(reason, line)
        }
        if oomKills > 0 { return crash(.oom, "killed by the kernel's OOM killer (\(oomKills) OOM kills in its memory cgroup)") }
        if case .signaled(let signal) = status, !stopRequested {
            return crash(.signal, "killed by signal \(signal), which Warden did not send")
        }
        return nil
    }

    /// A gofer (or other process runsc create left) that exited while its sandbox ran on.
    static func ofGofer(
        _ sandbox: String, process: String, pid: Int32, status: ExitStatus, panicLog: [UInt8]?, panicLogPath: String?, at: Double
    ) -> SandboxCrash {
        let line = panicLog.flatMap { crashLine(in: $0)?.line }
        return SandboxCrash(
            sandbox: sandbox, process: process, pid: pid, status: describe(status), reason: .gofer,
            detail: line ?? "the gofer is gone; the sandbox's file system calls to it fail", at: at, panicLog: panicLogPath)
    }
}

/// The shim's side of the crash records (`ShimFiles.crashRecord`): written on a crash, the
/// directory pruned to the newest `ShimFiles.crashRecordsKept`.
enum CrashRecords {
    static func write(_ crash: SandboxCrash, directory: String, namespace: String, pod: String) throws(Errno) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(crash.record) else { return }
        try Directories.make(directory)
        try Files.write("\(directory)/\(ShimFiles.crashRecord(namespace: namespace, pod: pod))", Array(data), mode: 0o644)
        prune(directory)
    }

    static func prune(_ directory: String) {
        let names = Directories.entries(directory).filter { $0.hasSuffix(ShimFiles.crashRecordExtension) }
        guard names.count > ShimFiles.crashRecordsKept else { return }
        let dated = names.map { name in
            (name, FileDescriptor.readAll("\(directory)/\(name)", limit: 64 << 10).flatMap {
                try? JSONDecoder().decode(CrashRecord.self, from: Data($0))
            }?.at ?? 0)
        }
        for (name, _) in dated.sorted(by: { $0.1 > $1.1 }).dropFirst(ShimFiles.crashRecordsKept) {
            Files.remove("\(directory)/\(name)")
        }
    }
}
