import LinuxSys
@testable import NetNS
import Testing
import WardenTestSupport

@Suite struct RouteMessageTests {
    @Test func setLinkDownIsRtmNewlinkClearingIffUp() {
        // nlmsghdr(len 32, RTM_NEWLINK, REQUEST|ACK, seq 7, pid 0) + ifinfomsg(index 5, flags 0, change IFF_UP)
        #expect(RouteMessage.setLinkDown(index: 5, sequence: 7) == [
            32, 0, 0, 0, 16, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
        ])
    }

    @Test func listLinksIsADumpRequest() {
        #expect(RouteMessage.listLinks(sequence: 1) == [
            32, 0, 0, 0, 18, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        #expect(RouteMessage.listAddresses(sequence: 2) == [
            24, 0, 0, 0, 22, 0, 1, 3, 2, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0,
        ])
        #expect(RouteMessage.deleteLink(index: 3, sequence: 9)[4..<8] == [17, 0, 5, 0])
    }

    @Test func decodesALinkWithNameAndKind() throws {
        let name: [UInt8] = [10, 0, 3, 0] + Array("veth0".utf8) + [0, 0, 0]  // 10 bytes, padded to 12
        let kind: [UInt8] = [9, 0, 1, 0] + Array("veth".utf8) + [0, 0, 0, 0]
        let linkInfo: [UInt8] = [16, 0, 18, 0] + kind
        let body: [UInt8] = [0, 0, 1, 0, 4, 0, 0, 0, 0x43, 0x10, 0, 0, 0, 0, 0, 0] + name + linkInfo
        let datagram = [UInt8(16 + body.count), 0, 0, 0, 16, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0] + body
            + [20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        let messages = try RouteMessage.messages(datagram)
        #expect(messages.count == 2)
        let link = try RouteMessage.link(messages[0])
        #expect(link == RouteMessage.Link(index: 4, name: "veth0", flags: 0x1043, kind: "veth"))
        #expect(link.isUp && !link.isLoopback)
        #expect(RouteMessage.isDone(messages[1]))
    }

    @Test func malformedLengthsAreErrorsNamingTheOffset() {
        #expect(throws: RouteMessage.DecodeError.self) {
            try RouteMessage.messages([200, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        }
        let bad = RouteMessage.Message(type: 16, sequence: 1, body: [UInt8](repeating: 0, count: 16) + [40, 0, 3, 0])
        #expect(throws: RouteMessage.DecodeError.self) { try RouteMessage.link(bad) }
        // An error message carries the negated errno.
        let ack = RouteMessage.Message(type: 2, sequence: 1, body: [0xED, 0xFF, 0xFF, 0xFF])  // -19
        #expect(RouteMessage.errorCode(ack) == 19)
    }
}

/// Against a real network namespace the test creates (never the host's).
@Suite(.serialized) struct NetworkNamespaceTests {
    /// Root and iproute2; under WARDEN_INTEROP=1 (scripts/test.sh) their absence is a failure.
    static var available: Bool {
        if ProcessIdentity.uid == 0 && FileDescriptor.exists("/usr/sbin/ip") { return true }
        if ProcessEnvironment.value("WARDEN_INTEROP") == "1" { Issue.record("network namespace tests need root and /usr/sbin/ip") }
        return false
    }

    @Test func downSetsEveryNonLoopbackLinkDownAndFlushesAddresses() async throws {
        guard Self.available else { return }
        try await withTimeout(.seconds(30), "netns down") {
            try await withTestNetworkNamespace { ns in
            try await ns.ip(["link", "add", "wa0", "type", "veth", "peer", "name", "wb0"])
            try await ns.ip(["link", "set", "lo", "up"])
            for link in ["wa0", "wb0"] { try await ns.ip(["link", "set", link, "up"]) }
            try await ns.ip(["addr", "add", "10.99.0.1/24", "dev", "wa0"])
            try await ns.ip(["addr", "add", "fd00:99::1/64", "dev", "wa0", "nodad"])

            let namespace = NetworkNamespace(path: ns.path)
            let report = try namespace.release(.down)
            #expect(Set(report.linksDown) == ["wa0", "wb0"])
            #expect(report.addressesFlushed >= 1, "\(report)")  // IPv6 may leave with the link going down
            let links = try namespace.links()
            #expect(links.filter { !$0.isLoopback }.allSatisfy { !$0.isUp }, "\(links)")
            #expect(links.contains { $0.isLoopback && $0.isUp }, "loopback is left alone")
            let addresses = try await ns.ip(["-o", "addr", "show", "dev", "wa0"])
            #expect(!addresses.contains("10.99.0.1") && !addresses.contains("fd00:99::1"), "\(addresses)")
            // Idempotent: a second release finds nothing to do.
            #expect(try namespace.release(.down) == NetworkNamespace.Report())
            }
        }
    }

    @Test func deleteRemovesVeths() async throws {
        guard Self.available else { return }
        try await withTimeout(.seconds(30), "netns delete") {
            try await withTestNetworkNamespace { ns in
            try await ns.ip(["link", "add", "wa1", "type", "veth", "peer", "name", "wb1"])
            try await ns.ip(["link", "add", "wd1", "type", "bridge"])
            try await ns.ip(["link", "set", "wd1", "up"])
            let report = try NetworkNamespace(path: ns.path).release(.delete)
            // The peer goes with the first veth; finding it gone already counts as deleted.
            #expect(Set(report.linksDeleted) == ["wa1", "wb1"], "\(report)")
            #expect(report.linksDown == ["wd1"])
            let links = try await ns.ip(["-o", "link"])
            #expect(!links.contains("wa1") && !links.contains("wb1") && links.contains("wd1"), "\(links)")
            }
        }
    }

    @Test func aMissingNamespaceIsAClearError() {
        guard Self.available else { return }
        #expect {
            try NetworkNamespace(path: "/var/run/netns/warden-no-such-ns").release(.down)
        } throws: { error in
            "\(error)".contains("/var/run/netns/warden-no-such-ns") && "\(error)".contains("No such file")
        }
    }
}
