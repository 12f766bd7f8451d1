import CLinuxSys
import Glibc

/// Raw rtnetlink sockets. Message encoding lives in the NetNS target; this is only the syscalls.
public enum Netlink {
    /// A NETLINK_ROUTE socket inside the network namespace at `path`. The caller never
    /// changes namespace; the socket pins the namespace until `close`.
    public static func routeSocket(inNamespaceAt path: String) throws(Errno) -> Int32 {
        try retryingEINTR("netlink socket in \(path)") { clinux_netlink_route_socket_in_netns(path) }
    }

    public static func send(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        let sent = bytes.withUnsafeBytes { raw in Glibc.send(fd, raw.baseAddress, raw.count, 0) }
        if sent < 0 { throw Errno.current("netlink send") }
        if sent != bytes.count { throw Errno(code: EMSGSIZE, call: "netlink send (short)") }
    }

    /// One datagram (possibly several messages); ETIMEDOUT if none arrives in time.
    public static func receive(_ fd: Int32, timeoutMilliseconds: Int32) throws(Errno) -> [UInt8] {
        let ready = Poll.wait(fd, events: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds)
        guard ready & Int16(POLLIN) != 0 else { throw Errno(code: ETIMEDOUT, call: "netlink receive") }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress, raw.count, 0) }
        if count < 0 { throw Errno.current("netlink receive") }
        return Array(buffer[0..<count])
    }

    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }
}

/// Processes seen through /proc: identity across pid reuse, and the process tree.
public enum ProcessTable {
    /// Start time of `pid` in clock ticks since boot, nil if it is gone. A (pid, start time)
    /// pair names one process for good: a recycled pid has a later start time.
    public static func startTime(_ pid: Int32) -> UInt64? {
        let ticks = clinux_process_start_time(pid)
        return ticks == 0 ? nil : UInt64(ticks)
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
        guard let stat = FileDescriptor.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
            return true
        }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state == "Z" || state == "X"
    }
}
