import LinuxSys

/// A process named for good: its pid and its start time (a recycled pid starts later). Start
/// times have clock-tick resolution (10 ms): a pid recycled within the tick its recorded
/// process started in would match, which needs the recorded process to have lived less than a
/// tick; the sandbox and gofer recorded live far longer.
public struct ProcessRecord: Equatable, Sendable, CustomStringConvertible {
    public let pid: Int32
    public let startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The record of a live process, nil if it is gone.
    public static func of(_ pid: Int32) -> ProcessRecord? {
        ProcessTable.startTime(pid).map { ProcessRecord(pid: pid, startTime: $0) }
    }

    public var description: String { "\(pid)@\(startTime)" }
}

/// The processes of a pod written down where the `delete` command finds them after the shim
/// died (containerd runs `delete` then): one `pid start-time` per line.
public enum RecordedProcesses {
    public static func encode(_ records: [ProcessRecord]) -> String {
        records.map { "\($0.pid) \($0.startTime)\n" }.joined()
    }

    /// Lines that do not parse are skipped: the file is only ever written by the shim.
    public static func decode(_ text: String) -> [ProcessRecord] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let pid = Int32(fields[0]), pid > 0, let start = UInt64(fields[1]) else { return nil }
            return ProcessRecord(pid: pid, startTime: start)
        }
    }

    /// What `kill` did.
    public struct KillReport: Equatable, Sendable {
        /// Pids signalled: recorded processes still alive as recorded, and their descendants.
        public var signalled: [Int32] = []
        /// Recorded pids now held by another process (or gone): left alone.
        public var skipped: [Int32] = []
        /// Signalled processes still alive when the time ran out.
        public var survivors: [Int32] = []
    }

    /// SIGKILLs every recorded process that is still the one recorded, and its descendants,
    /// through pidfds; waits up to `within` for them to exit. A pid now owned by an unrelated
    /// process is never signalled: the pidfd is opened first, then the start time compared,
    /// so the check and the signal concern the same process.
    public static func kill(_ records: [ProcessRecord], within: Duration) async -> KillReport {
        var report = KillReport()
        var pidfds: [(pid: Int32, fd: Int32)] = []
        for record in records {
            guard let fd = try? PidFD.open(record.pid) else {
                report.skipped.append(record.pid)
                continue
            }
            guard ProcessTable.startTime(record.pid) == record.startTime else {
                PidFD.close(fd)
                report.skipped.append(record.pid)
                continue
            }
            // Descendants first listed, then the recorded process: what it spawned cannot escape.
            for pid in ProcessTable.descendants(of: record.pid) where !pidfds.contains(where: { $0.pid == pid }) {
                if let descendant = try? PidFD.open(pid) { pidfds.append((pid, descendant)) }
            }
            pidfds.append((record.pid, fd))
        }
        for (pid, fd) in pidfds {
            if (try? PidFD.sendSignal(fd, 9)) != nil { report.signalled.append(pid) }
        }
        let deadline = ContinuousClock.now + within
        var waiting = pidfds
        while !waiting.isEmpty, ContinuousClock.now < deadline {
            waiting.removeAll { entry in
                let exited = Poll.wait(entry.fd, events: 1 /* POLLIN */, timeoutMilliseconds: 0) != 0
                if exited { PidFD.close(entry.fd) }
                return exited
            }
            if !waiting.isEmpty { try? await Timers.sleep(for: .milliseconds(10)) }
        }
        report.survivors = waiting.map(\.pid)
        waiting.forEach { PidFD.close($0.fd) }
        return report
    }
}
