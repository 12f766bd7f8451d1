import LinuxSys

/// What a pod's network namespace looks like and how it is released before the sandbox is
/// torn down (design.md §3, step 1): non-loopback links set down and their addresses flushed,
/// or veths deleted. Everything goes through one rtnetlink socket opened inside the namespace
/// and closed before returning, so no namespace reference outlives the call.
public struct NetworkNamespace: Sendable {
    public enum Release: String, Sendable {
        /// Links down, addresses flushed.
        case down
        /// veths deleted (their host peers go with them); other links down and flushed.
        case delete
    }

    /// What a release did, for the termination log record.
    public struct Report: Equatable, Sendable, CustomStringConvertible {
        public var linksDown: [String] = []
        public var linksDeleted: [String] = []
        public var addressesFlushed = 0
        public var description: String {
            "down=[\(linksDown.joined(separator: ","))] deleted=[\(linksDeleted.joined(separator: ","))] addresses=\(addressesFlushed)"
        }
    }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    /// Bound on each netlink reply.
    public var replyTimeoutMilliseconds: Int32 = 1000

    public init(path: String) {
        self.path = path
    }

    /// Every link of the namespace.
    public func links() throws(Failure) -> [RouteMessage.Link] {
        var session = try Session(path: path, timeout: replyTimeoutMilliseconds)
        defer { session.close() }
        return try session.links()
    }

    /// Releases the namespace's network (loopback is left alone).
    public func release(_ mode: Release) throws(Failure) -> Report {
        var session = try Session(path: path, timeout: replyTimeoutMilliseconds)
        defer { session.close() }
        var report = Report()
        let links = try session.links().filter { !$0.isLoopback }
        var remaining: Set<Int32> = []
        for link in links {
            if mode == .delete && link.kind == "veth" {
                try session.change(RouteMessage.deleteLink(index: link.index, sequence: session.next()), "delete link \(link.name)")
                report.linksDeleted.append(link.name)
                continue
            }
            remaining.insert(link.index)
            if link.isUp {
                try session.change(RouteMessage.setLinkDown(index: link.index, sequence: session.next()), "set \(link.name) down")
                report.linksDown.append(link.name)
            }
        }
        for address in try session.addresses() where remaining.contains(address.linkIndex) {
            try session.change(RouteMessage.deleteAddress(address, sequence: session.next()), "flush an address of link \(address.linkIndex)")
            report.addressesFlushed += 1
        }
        return report
    }

    /// One netlink conversation: requests numbered in order, replies matched by number.
    struct Session {
        let path: String
        let socket: Int32
        let timeout: Int32
        var sequence: UInt32 = 0

        init(path: String, timeout: Int32) throws(Failure) {
            do throws(Errno) {
                socket = try Netlink.routeSocket(inNamespaceAt: path)
            } catch {
                throw Failure(description: "network namespace \(path): \(error)")
            }
            self.path = path
            self.timeout = timeout
        }

        mutating func next() -> UInt32 {
            sequence += 1
            return sequence
        }

        func close() { Netlink.close(socket) }

        mutating func links() throws(Failure) -> [RouteMessage.Link] {
            var links: [RouteMessage.Link] = []
            for message in try dump(RouteMessage.listLinks(sequence: next()), "list links") {
                do throws(RouteMessage.DecodeError) { links.append(try RouteMessage.link(message)) } catch {
                    throw Failure(description: "network namespace \(path): list links: \(error)")
                }
            }
            return links
        }

        mutating func addresses() throws(Failure) -> [RouteMessage.Address] {
            var addresses: [RouteMessage.Address] = []
            for message in try dump(RouteMessage.listAddresses(sequence: next()), "list addresses") {
                do throws(RouteMessage.DecodeError) { addresses.append(try RouteMessage.address(message)) } catch {
                    throw Failure(description: "network namespace \(path): list addresses: \(error)")
                }
            }
            return addresses
        }

        /// Sends a dump request; the messages up to NLMSG_DONE.
        func dump(_ request: [UInt8], _ what: String) throws(Failure) -> [RouteMessage.Message] {
            let sequence = RouteMessage.u32(request, 8)
            try send(request, what)
            var result: [RouteMessage.Message] = []
            while true {
                for message in try receive(what) where message.sequence == sequence {
                    if RouteMessage.isDone(message) { return result }
                    if let code = RouteMessage.errorCode(message), code != 0 {
                        throw Failure(description: "network namespace \(path): \(what): \(Errno(code: code, call: "rtnetlink"))")
                    }
                    result.append(message)
                }
            }
        }

        /// Sends a change with NLM_F_ACK and waits for its acknowledgement. A link or address
        /// already gone (ENODEV, EADDRNOTAVAIL) counts as done: the goal is that it is not there.
        func change(_ request: [UInt8], _ what: String) throws(Failure) {
            let sequence = RouteMessage.u32(request, 8)
            try send(request, what)
            while true {
                for message in try receive(what) where message.sequence == sequence {
                    guard let code = RouteMessage.errorCode(message) else { continue }
                    if code == 0 || code == 19 /* ENODEV */ || code == 99 /* EADDRNOTAVAIL */ { return }
                    throw Failure(description: "network namespace \(path): \(what): \(Errno(code: code, call: "rtnetlink"))")
                }
            }
        }

        func send(_ bytes: [UInt8], _ what: String) throws(Failure) {
            do throws(Errno) { try Netlink.send(socket, bytes) } catch {
                throw Failure(description: "network namespace \(path): \(what): \(error)")
            }
        }

        func receive(_ what: String) throws(Failure) -> [RouteMessage.Message] {
            do {
                return try RouteMessage.messages(try Netlink.receive(socket, timeoutMilliseconds: timeout))
            } catch let error as Errno {
                throw Failure(description: "network namespace \(path): \(what): \(error)")
            } catch {
                throw Failure(description: "network namespace \(path): \(what): \(error)")
            }
        }
    }
}
