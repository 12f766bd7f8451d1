import ContainerdAPI
import Foundation
import SwiftProtobuf
import Testing
import TTRPC
import WardenTestSupport

/// Warden's ttrpc client publishing to a real, private containerd 1.6.20 through
/// containerd.services.events.ttrpc.v1.Events/Forward, observed with `ctr events`.
@Suite(.timeLimit(.minutes(2)), .enabled(if: Interop.containerdAvailable, "containerd/ctr not installed or not root"))
struct ContainerdEventsInteropTests {
    @Test func forwardedEventReachesCtrEvents() async throws {
        let containerd = try await PrivateContainerd.start()
        var events: ChildProcess?
        do {
            let watcher = try ChildProcess("/usr/bin/ctr", ["--address", containerd.address, "events"])
            events = watcher
            let client = try TTRPCClient.connect(path: containerd.ttrpcAddress)
            defer { client.close() }
            let containerID = "warden-interop-\(UInt32.random(in: 0...UInt32.max))"
            var oom = Containerd_Events_TaskOOM()
            oom.containerID = containerID
            var request = Containerd_Services_Events_Ttrpc_V1_ForwardRequest()
            request.envelope.timestamp = Google_Protobuf_Timestamp(date: Date())
            request.envelope.namespace = "warden-interop"
            request.envelope.topic = "/tasks/oom"
            request.envelope.event = try Google_Protobuf_Any(containerdMessage: oom)
            // `ctr events` gives no readiness signal: forward until its subscription shows it.
            let deadline = ContinuousClock.now + .seconds(20)
            while !watcher.outputText.contains(containerID) {
                _ = try await client.call(
                    service: "containerd.services.events.ttrpc.v1.Events", method: "Forward", request: request,
                    returning: Google_Protobuf_Empty.self, timeout: .seconds(5))
                try await Task.sleep(for: .milliseconds(200))
                if ContinuousClock.now > deadline {
                    Issue.record("ctr events never showed the event; output:\n\(watcher.outputText)")
                    break
                }
            }
            let line = watcher.outputText.split(separator: "\n").first { $0.contains(containerID) } ?? ""
            #expect(line.contains("warden-interop /tasks/oom"), "ctr events line: \(line)")

            // containerd's own validation error comes back as a ttrpc status with its message.
            request.envelope.topic = "not-a-topic"
            do {
                _ = try await client.call(
                    service: "containerd.services.events.ttrpc.v1.Events", method: "Forward", request: request,
                    returning: Google_Protobuf_Empty.self, timeout: .seconds(5))
                Issue.record("containerd accepted an invalid topic")
            } catch let status as TTRPCStatus {
                #expect(status.code == .invalidArgument, "\(status)")
                #expect(status.message.contains("not-a-topic"), "\(status)")
            }
        } catch {
            await events?.stop()
            await containerd.stop()
            throw error
        }
        await events?.stop()
        await containerd.stop()
        if let events {
            // Gone within a moment: Foundation's own reaper may still be collecting it.
            for _ in 0..<100 where processExists(events.pid) { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!processExists(events.pid), "ctr events (pid \(events.pid)) still there")
        }
        try containerd.auditNothingLeft()
    }
}
