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
