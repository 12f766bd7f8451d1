import ContainerdAPI
import Deadlines
import LinuxSys
import SwiftProtobuf
import TTRPC

/// Publishes task events to containerd (`containerd.services.events.ttrpc.v1.Events/Forward`
/// on `TTRPC_ADDRESS`), strictly in the order they were queued. Publishing never blocks a
/// caller: events go to a queue drained by one task, which retries a failed Forward with
/// backoff (reconnecting) before moving on, so a TaskExit is never overtaken by a later event.
public final class EventPublisher: Sendable {
    public struct Event: Sendable {
        public var topic: String
        public var message: Google_Protobuf_Any
    }

    private let address: String
    private let namespace: String
    private let log: ShimLog
    private let continuation: AsyncStream<Event>.Continuation
    private let drained: Task<Void, Never>

    /// - Parameters:
    ///   - forwardTimeout: bound on one Forward call (containerd's shims use 5 s).
    ///   - attempts: tries per event before it is dropped and logged.
    ///   - loop: serves the connection to containerd (the shim's, shared with its server).
    public init(
        address: String, namespace: String, log: ShimLog, forwardTimeout: Duration = .seconds(5), attempts: Int = 5,
        loop: FrameLoop? = nil
    ) {
        self.address = address
        self.namespace = namespace
        self.log = log
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        self.continuation = continuation
        drained = Task { [address, namespace, log, loop] in
            var client: TTRPCClient?
            for await event in stream {
                var envelope = Containerd_Services_Events_Ttrpc_V1_Envelope()
                let (seconds, nanos) = WallClock.now()
                envelope.timestamp = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
                envelope.namespace = namespace
                envelope.topic = event.topic
                envelope.event = event.message
                var request = Containerd_Services_Events_Ttrpc_V1_ForwardRequest()
                request.envelope = envelope
                var delivered = false
                for attempt in 1...max(1, attempts) {
                    do {
                        if client == nil || client!.isClosed { client = try TTRPCClient.connect(path: address, loop: loop) }
                        let _: Google_Protobuf_Empty = try await client!.call(
                            service: "containerd.services.events.ttrpc.v1.Events", method: "Forward", request: request,
                            timeout: forwardTimeout)
                        delivered = true
                        break
                    } catch {
                        log.warn("publish \(event.topic) attempt \(attempt) failed: \(error)")
                        client?.close()
                        client = nil
                        try? await Timers.sleep(for: .milliseconds(100 * attempt * attempt))
                    }
                }
                if !delivered { log.error("event \(event.topic) dropped after \(attempts) attempts") }
            }
            client?.close()
        }
    }

    /// Queues an event; returns at once.
    public func publish(_ topic: String, _ message: some SwiftProtobuf.Message) {
        guard let any = try? Google_Protobuf_Any(containerdMessage: message) else {
            log.error("cannot encode event \(topic)")
            return
        }
        continuation.yield(Event(topic: topic, message: any))
    }

    /// Stops accepting events and waits, up to `deadline`, for the queued ones to be sent.
    public func close(within deadline: Duration) async {
        continuation.finish()
        let drained = self.drained
        _ = await waitAtMost(deadline) { await drained.value }
    }
}
