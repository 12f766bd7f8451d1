import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// Network pre-release (netns_release = "down") against a pod network made by Debian's CNI
/// `bridge` plugin, inside namespaces of the test's own: one stands in for the node, one is
/// the pod's. fake-runsc's `unkillable-until-netns-down` only lets a kill through once the
/// pod's links are down, and logs what each kill saw.
@Suite(.serialized)
struct NetworkReleaseTests {
    static let cniPath = "/usr/lib/cni"

    @Test func linksAreDownBeforeTheKillAndCniDelStillSucceeds() async throws {
        guard ShimHarness.available(.fake, also: [Self.cniPath + "/bridge", "/usr/sbin/ip"]) else { return }
        try await ShimHarness.run(.fake, limit: .seconds(90), "netns release", deadlines: TerminationTests.deadlines) { h in
            try await withTestNetworkNamespace { node in
                try await withTestNetworkNamespace { pod in
                    let cniConfig = """
                        {"cniVersion": "0.4.0", "name": "wdtnet", "type": "bridge", "bridge": "wdbr0",
                         "isGateway": true, "ipMasq": false,
                         "ipam": {"type": "host-local", "subnet": "10.88.77.0/24", "dataDir": "\(h.containerd.dir.file("cni"))"}}
                        """
                    let add = try await Self.cni("ADD", config: cniConfig, node: node, pod: pod)
                    #expect(add.status == 0 && add.output.contains("10.88.77."), "CNI ADD: \(add.output)")
                    #expect(try await pod.ip(["-o", "link", "show", "eth0"]).contains(",UP"))

                    try FileManager.default.createDirectory(atPath: h.runscRoot, withIntermediateDirectories: true)
                    try "unkillable-until-netns-down\n".write(toFile: h.runscRoot + "/faults", atomically: true, encoding: .utf8)
                    _ = try await h.ctr(["run", "-d"] + h.runtimeFlags + ["--with-ns", "network:\(pod.path)", ShimHarness.image, "netpod", "sleep", "1000"])
                    try await h.waitForTask("netpod", status: "RUNNING")

                    let started = ContinuousClock.now
                    #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "netpod"]).status == 0)
                    try await h.waitForTask("netpod", status: "STOPPED", timeout: TerminationTests.stopDeadline + .milliseconds(500))
                    #expect(ContinuousClock.now - started < TerminationTests.stopDeadline + .milliseconds(500))

                    let seen = (try? String(contentsOfFile: h.runscRoot + "/fault-log", encoding: .utf8)) ?? ""
                    #expect(seen.contains("kill 9 links=down"), "fault log: \(seen)")
                    #expect(!seen.contains("links=up"), "a kill reached the sandbox while its links were up: \(seen)")
                    let output = h.containerd.process.outputText
                    #expect(output.contains("netns=") && output.contains("down=[eth0]"), "the record names the release")
                    #expect(output.contains("grace_expired=0 sigkill=0"), "no SIGKILL escalation was needed once the network was down")
                    let eth0 = try await pod.ip(["-o", "addr", "show", "dev", "eth0"])
                    #expect(!eth0.contains("inet "), "addresses flushed: \(eth0)")

                    let del = try await Self.cni("DEL", config: cniConfig, node: node, pod: pod)
                    #expect(del.status == 0, "CNI DEL after the release: \(del.output)")

                    #expect(try await h.ctr(["task", "rm", "netpod"]).status == 0)
                    #expect(try await h.ctr(["container", "rm", "netpod"]).status == 0)
                    for file in ["faults", "fault-log"] { try? FileManager.default.removeItem(atPath: h.runscRoot + "/" + file) }
                }
            }
        }
    }

    /// Runs the bridge plugin inside the stand-in node namespace (its bridge and host-side veth
    /// live there, never on the host).
    static func cni(_ command: String, config: String, node: TestNetworkNamespace, pod: TestNetworkNamespace) async throws -> CommandResult {
        try await runCommand(
            "/usr/sbin/ip", ["netns", "exec", node.name, cniPath + "/bridge"], stdin: config,
            environment: [
                "CNI_COMMAND": command, "CNI_CONTAINERID": "netpod", "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0",
                "CNI_PATH": cniPath,
            ], timeout: .seconds(20))
    }
}
