import ContainerdAPI
import LinuxSys
import Testing
import WardenTestSupport

@testable import ShimCore

/// A pod of the shim sandboxer gets /etc/hostname, /etc/hosts and /etc/resolv.conf as under
/// `podsandbox`: containerd leaves them to the sandbox controller in that mode.
@Suite(.timeLimit(.minutes(1))) struct PodFilesTests {
    @Test func resolvConfFollowsThePodsDNSConfig() {
        var pod = Runtime_V1_PodSandboxConfig()
        pod.hostname = "web-0"
        pod.dnsConfig.servers = ["10.96.0.10", "10.96.0.11"]
        pod.dnsConfig.searches = ["default.svc.cluster.local", "svc.cluster.local"]
        pod.dnsConfig.options = ["ndots:5"]
        let files = Dictionary(
            uniqueKeysWithValues: PodFiles.contents(
                pod: pod, nodeHostname: "node", nodeHosts: Array("127.0.0.1 localhost\n".utf8),
                nodeResolvConf: Array("nameserver 1.1.1.1\n".utf8)
            ).map { ($0.destination, String(decoding: $0.bytes, as: UTF8.self)) })
        #expect(files["/etc/hostname"] == "web-0\n")
        #expect(files["/etc/hosts"] == "127.0.0.1 localhost\n")
        #expect(
            files["/etc/resolv.conf"]
                == "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n")
    }

    /// No DNS config and no hostname: the node's, as containerd's podsandbox controller does.
    @Test func withoutAConfigTheNodesFilesAreUsed() {
        let files = PodFiles.contents(
            pod: Runtime_V1_PodSandboxConfig(), nodeHostname: "node", nodeHosts: [], nodeResolvConf: Array("nameserver 1.1.1.1\n".utf8))
        #expect(files.map(\.destination) == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"])
        #expect(files[0].bytes == Array("node\n".utf8))
        #expect(files[2].bytes == Array("nameserver 1.1.1.1\n".utf8))
    }

    @Test func mountsAreAppendedToTheTopLevelArrayOnly() throws {
        let spec = #"{"annotations":{"mounts":"x"},"mounts":[{"destination":"/proc"}] ,"process":{"args":["sh"]}}"#
        let added = try #require(PodFiles.appendingMounts([Array(#"{"destination":"/etc/hosts"}"#.utf8)], to: Array(spec.utf8)))
        #expect(
            String(decoding: added, as: UTF8.self)
                == #"{"annotations":{"mounts":"x"},"mounts":[{"destination":"/etc/hosts"},{"destination":"/proc"}] ,"process":{"args":["sh"]}}"#)
        let empty = try #require(PodFiles.appendingMounts([Array("{}".utf8), Array("{}".utf8)], to: Array(#"{"mounts": [ ]}"#.utf8)))
        #expect(String(decoding: empty, as: UTF8.self) == #"{"mounts": [{},{} ]}"#)
    }

    /// A "mounts" that is no array, or a spec cut short, is not guessed at.
    @Test(arguments: [#"{"mounts":null}"#, #"{"mounts":"#, #"{"process":{}"#, #"{"a":"\"mounts\":[""#])
    func aSpecWithAMountsThatIsNoArrayIsRefused(spec: String) {
        #expect(PodFiles.appendingMounts([Array("{}".utf8)], to: Array(spec.utf8)) == nil)
    }

    /// "mounts" is optional in OCI: a spec without one at the top (nested ones and strings
    /// naming it do not count) gets a new array.
    @Test(arguments: [
        (#"{"process":{}}"#, #"{"mounts":[{},{}],"process":{}}"#),
        (#"{"linux":{"mounts":[]}}"#, #"{"mounts":[{},{}],"linux":{"mounts":[]}}"#),
        (#"{"a":"\"mounts\":["}"#, #"{"mounts":[{},{}],"a":"\"mounts\":["}"#),
        (#" { } "#, #" {"mounts":[{},{}] } "#),
    ])
    func aSpecWithoutMountsGetsTheArray(spec: String, expected: String) throws {
        let added = try #require(PodFiles.appendingMounts([Array("{}".utf8), Array("{}".utf8)], to: Array(spec.utf8)))
        #expect(String(decoding: added, as: UTF8.self) == expected)
    }

    /// A mount the container's spec already has at one of the paths wins; the others are added,
    /// read-only with a read-only rootfs, and the spec still decodes.
    @Test func theSpecsOwnMountsWin() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let bundle = dir.path
        let spec = #"{"root":{"path":"rootfs","readonly":true},"mounts":[{"destination":"/etc/resolv.conf","type":"bind","source":"/mine"}],"process":{"args":["sh"]}}"#
        try Files.write(bundle + "/config.json", spec)
        var pod = Runtime_V1_PodSandboxConfig()
        pod.hostname = "web-0"
        let files = try PodFiles.write(pod: pod, directory: dir.path + "/files")
        #expect(FileDescriptor.readText(dir.path + "/files/hostname") == "web-0\n")
        let loaded = try OCISpec.load(bundle: bundle)
        #expect(try files.addMounts(bundle: bundle, spec: loaded) == ["/etc/hostname", "/etc/hosts"])
        let text = try #require(FileDescriptor.readText(bundle + "/config.json"))
        #expect(text.contains(#""source":"/mine""#))
        #expect(text.contains(#"{"destination":"/etc/hostname","options":["rbind","rprivate","ro"],"source":"\#(dir.path)/files/hostname","type":"bind"}"#))
        #expect(try OCISpec.load(bundle: bundle).mounts?.count == 3)
        // Again (a retried Create): nothing more is added.
        #expect(try files.addMounts(bundle: bundle, spec: try OCISpec.load(bundle: bundle)) == [])
    }
}
