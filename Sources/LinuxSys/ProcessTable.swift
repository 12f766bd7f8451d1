import Glibc

/// Processes seen through /proc: identity across pid reuse, and the process tree.
public enum ProcessTable {
    /// Start time of `pid` in clock ticks since boot, nil if it is gone. A (pid, start time)
    /// pair names one process for good: a recycled pid has a later start time.
    public static func startTime(_ pid: Int32) -> UInt64? {
        ProcStat.read(pid)?.startTime
    }

    /// Direct children of `pid` (from every thread's `children` list).
    public static func children(of pid: Int32) -> [Int32] {
        var result: [Int32] = []
        for name in Directories.entries("/proc/\(pid)/task") {
            guard let tid = Int32(name) else { continue }
            let text = FileDescriptor.readText("/proc/\(pid)/task/\(tid)/children") ?? ""
            result += text.split(separator: " ").compactMap { Int32($0.filter { $0 != "\n" }) }
        }
        return result
    }

    /// Every descendant of `pid`, parents before children.
    public static func descendants(of pid: Int32) -> [Int32] {
        var result: [Int32] = []
        var queue = [pid]
        while !queue.isEmpty {
            let next = children(of: queue.removeFirst())
            result += next
            queue += next
        }
        return result
    }

    /// Whether `pid` is a zombie (exited, not yet reaped) or gone.
    public static func isGoneOrZombie(_ pid: Int32) -> Bool {
        guard let state = ProcStat.read(pid)?.state else { return true }
        return state == "Z" || state == "X"
    }
}

/// One process as /proc shows it, for the operator CLI (status, doctor).
public struct ProcessEntry: Sendable, Equatable {
    public let pid: Int32
    public let parent: Int32
    /// `comm` (a thread may rename it, e.g. warden-spawner).
    public let name: String
    /// The command line, argv[0] first.
    public let arguments: [String]
    /// Clock ticks since boot: with the pid, names the process for good.
    public let startTime: UInt64
    public let state: Character

    public init(pid: Int32, parent: Int32, name: String, arguments: [String], startTime: UInt64, state: Character) {
        self.pid = pid
        self.parent = parent
        self.name = name
        self.arguments = arguments
        self.startTime = startTime
        self.state = state
    }
}

extension ProcessTable {
    /// Every process now (zombies included, marked by `state`).
    public static func snapshot() -> [ProcessEntry] {
        Directories.entries("/proc").compactMap { Int32($0) }.compactMap(entry)
    }

    /// One process, nil when it is gone.
    public static func entry(_ pid: Int32) -> ProcessEntry? {
        guard let stat = ProcStat.read(pid) else { return nil }
        let raw = FileDescriptor.readAll("/proc/\(pid)/cmdline", limit: 1 << 16) ?? []
        let arguments = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        return ProcessEntry(
            pid: pid, parent: stat.parent, name: stat.name,
            arguments: arguments.last == "" ? Array(arguments.dropLast()) : arguments,
            startTime: stat.startTime, state: stat.state)
    }

    /// `NAME=value` strings of the process's environment (root can read any).
    public static func environment(_ pid: Int32) -> [String] {
        (FileDescriptor.readAll("/proc/\(pid)/environ", limit: 1 << 20) ?? []).split(separator: 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// RSS and PSS in KiB (smaps_rollup), nil when gone.
    public static func memory(_ pid: Int32) -> (rss: Int, pss: Int)? {
        guard let text = FileDescriptor.readText("/proc/\(pid)/smaps_rollup") else { return nil }
        var rss = 0
        var pss = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            if parts[0] == "Rss:" { rss = value }
            if parts[0] == "Pss:" { pss = value }
        }
        return (rss, pss)
    }

    /// The network namespace the process is in (device and inode of /proc/PID/ns/net).
    public static func networkNamespace(_ pid: Int32) -> FileIdentity? {
        FileIdentity.of("/proc/\(pid)/ns/net")
    }
}

/// /proc/PID/stat, parsed in this one place. `comm` may hold spaces and parentheses, so the
/// fields are counted after the last ')'.
struct ProcStat {
    let name: String
    let state: Character
    let parent: Int32
    /// Field 22: clock ticks since boot.
    let startTime: UInt64

    static func read(_ pid: Int32) -> ProcStat? {
        guard let text = FileDescriptor.readText("/proc/\(pid)/stat") else { return nil }
        return parse(text)
    }

    static func parse(_ text: String) -> ProcStat? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        // After ')': field 3 (state) is fields[0], so field N is fields[N - 3].
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = Int32(fields[1]),
            let start = UInt64(fields[19].filter { $0 != "\n" })
        else { return nil }
        return ProcStat(name: String(text[text.index(after: open)..<close]), state: state, parent: parent, startTime: start)
    }
}

/// /proc's clock: process start times are in ticks since boot.
public enum ClockTicks {
    public static var perSecond: Int { sysconf(Int32(_SC_CLK_TCK)) }
    /// Seconds since boot (/proc/uptime).
    public static var uptimeSeconds: Double {
        FileDescriptor.readText("/proc/uptime").flatMap { $0.split(separator: " ").first.flatMap { Double($0) } } ?? 0
    }
}

/// /proc/PID/cgroup.
public enum ProcessCgroups {
    /// The cgroup paths of `pid`, one per hierarchy line (`id:controllers:/path`), deduplicated.
    public static func paths(_ pid: Int32) -> [String] {
        let lines = (FileDescriptor.readText("/proc/\(pid)/cgroup") ?? "").split(separator: "\n")
        var seen: [String] = []
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if !seen.contains(path) { seen.append(path) }
        }
        return seen
    }
}
