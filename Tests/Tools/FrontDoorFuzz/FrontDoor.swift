#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import Runsc
import LinuxSys
import ShimCore
import Supervisor
import SwiftProtobuf
import TTRPC

/// The shim's front door as a fuzz target (issue 13): the bytes a peer sends, through the
/// ttrpc frame decoder, the ttrpc Request envelope, and the request decoder of every Task
/// method as the shim registers it (both task services). Handlers are not run: only the
/// decoding a hostile peer reaches before any validation. A crash, a hang, a decoder that
/// buffers past its bound, or a request that does not survive a re-encode is a finding.
public final class FrontDoor: Sendable {
    /// (service, method) → the registered decoder, from the shim's real registration.
    private let decoders: [String: ServiceRegistry.RequestDecoder]
    public let methodCount: Int

    /// A registry as a serving shim builds it; its PodShim never gets to run anything.
    public init() throws {
        let supervisor = try Supervisor()
        let log = ShimLog(fifo: nil, level: .error)
        let runsc = Runsc(
            configuration: RunscConfiguration(binary: "/nonexistent/runsc", root: "/nonexistent", scratchDirectory: "/nonexistent"),
            supervisor: supervisor)
        let shim = PodShim(
            runsc: runsc, supervisor: supervisor, stdioCopier: try StdioCopier(),
            events: EventPublisher(address: "/nonexistent/events", namespace: "fuzz", log: log), log: log,
            namespace: "fuzz", scratchDirectory: "/nonexistent", onEmptyShutdown: {})
        var registry = ServiceRegistry()
        TaskService.register(shim, into: &registry)
        var decoders: [String: ServiceRegistry.RequestDecoder] = [:]
        for entry in registry.requestDecoders { decoders[entry.service + "/" + entry.method] = entry.decode }
        self.decoders = decoders
        methodCount = decoders.count
    }

    /// Tallies of one or many inputs, for the runners' reports.
    public struct Tally: Sendable {
        public var inputs = 0
        public var frames = 0
        public var requests = 0
        public var decodedTaskRequests = 0
        public var frameErrors = 0
        public init() {}
    }

    /// One input. Byte 0 sets how the rest is delivered (in chunks of 1...64 bytes, or
    /// whole), as reads of a connection would; byte 1 the method a bare payload goes to.
    /// The rest is the connection's byte stream.
    public func run(_ data: [UInt8], into tally: inout Tally) {
        tally.inputs += 1
        guard data.count >= 2 else { return }
        let chunk = data[0] < 192 ? Int(data[0] % 64) + 1 : data.count
        let stream = Array(data[2...])
        // The same bytes, taken as a Task request payload (as if a valid envelope carried it).
        let methods = decoders.keys.sorted()
        if !methods.isEmpty { decodeTaskRequest(methods[Int(data[1]) % methods.count], Array(stream), into: &tally) }

        var decoder = FrameDecoder()
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + chunk)
            decoder.append(Array(stream[offset..<end]))
            offset = end
            do {
                while let item = try decoder.next() {
                    tally.frames += 1
                    if case .frame(let frame) = item { received(frame, into: &tally) }
                }
            } catch {
                tally.frameErrors += 1  // the server closes the connection here
                return
            }
            // Memory stays bounded whatever the peer announces: an oversized frame is skipped
            // as it arrives, never buffered.
            precondition(
                decoder.bufferedByteCount <= FrameHeader.maxDataLength + FrameHeader.length + chunk,
                "frame decoder buffered \(decoder.bufferedByteCount) bytes")
        }
    }

    private func received(_ frame: Frame, into tally: inout Tally) {
        guard frame.messageType == .request, let request = try? Ttrpc_Request(serializedBytes: frame.payload) else { return }
        tally.requests += 1
        let key = request.service + "/" + request.method
        if decoders[key] != nil { decodeTaskRequest(key, [UInt8](request.payload), into: &tally) }
    }

    private func decodeTaskRequest(_ key: String, _ payload: [UInt8], into tally: inout Tally) {
        guard let decode = decoders[key], let message = try? decode(payload) else { return }
        tally.decodedTaskRequests += 1
        // What decoded re-encodes, and decodes again to the same message.
        guard let encoded: [UInt8] = try? message.serializedBytes(), let again = try? decode(encoded) else {
            preconditionFailure("\(key): a decoded request does not re-encode")
        }
        precondition(again.isEqualTo(message: message), "\(key): a request changed across a re-encode")
    }
}

extension FrontDoor {
    /// Seed inputs (the committed corpus, tests/fuzz/corpus, is written from these): for every
    /// Task method a framed request as containerd sends it, plus the hostile shapes: a 4 GiB
    /// length, a frame cut mid-payload, two frames in one read, an envelope that is not one.
    public func seeds() throws -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        var mount = Containerd_Types_Mount()
        mount.type = "overlay"
        mount.source = "overlay"
        mount.options = ["lowerdir=/a:/b", "upperdir=/c", "workdir=/d"]
        var create = Containerd_Task_V2_CreateTaskRequest()
        create.id = "c1"
        create.bundle = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1"
        create.rootfs = [mount]
        create.stdin = "/run/containerd/fifo/1/c1-stdin"
        create.stdout = "/run/containerd/fifo/1/c1-stdout"
        create.terminal = true
        var exec = Containerd_Task_V2_ExecProcessRequest()
        exec.id = "c1"
        exec.execID = "e1"
        exec.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        exec.spec.value = Data(#"{"args":["sh"],"cwd":"/"}"#.utf8)
        var kill = Containerd_Task_V2_KillRequest()
        kill.id = "c1"
        kill.signal = 9
        kill.all = true
        var resize = Containerd_Task_V2_ResizePtyRequest()
        resize.id = "c1"
        resize.width = 80
        resize.height = 24
        let samples: [String: any SwiftProtobuf.Message] = ["Create": create, "Exec": exec, "Kill": kill, "ResizePty": resize]
        for (index, key) in decoders.keys.sorted().enumerated() {
            let method = String(key.split(separator: "/").last ?? "")
            var request = Ttrpc_Request()
            request.service = String(key.split(separator: "/").first ?? "")
            request.method = method
            request.payload = Data(try (samples[method]?.serializedBytes() as [UInt8]?) ?? [])
            request.timeoutNano = 5_000_000_000
            var namespace = Ttrpc_KeyValue()
            namespace.key = "containerd-namespace-ttrpc"
            namespace.value = "k8s.io"
            request.metadata = [namespace]
            let frame = try Frame(streamID: 1, type: .request, payload: try request.serializedBytes()).encoded()
            seeds.append((name: "request-" + key.split(separator: "/").joined(separator: "-"), bytes: [0, UInt8(index)] + frame))
        }
        let first = seeds.first?.bytes ?? [0, 0]
        // A length of 4 GiB - 1 with a little payload behind it.
        seeds.append((name: "length-4GiB", bytes: [7, 0] + [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0] + Array(repeating: 0x41, count: 64)))
        // The first request cut mid-payload (a peer that stalls).
        seeds.append((name: "cut-mid-frame", bytes: Array(first.prefix(max(2, first.count / 2)))))
        // Two requests in one read, the second on stream 3.
        if let second = seeds.dropFirst().first?.bytes, second.count > 6 {
            var next = Array(second.dropFirst(2))
            next[7] = 3
            seeds.append((name: "two-frames", bytes: [255] + first.dropFirst() + next))
        }
        // A request frame whose payload is not a ttrpc Request.
        seeds.append((name: "not-an-envelope", bytes: [3, 0] + (try Frame(streamID: 5, type: .request, payload: Array("not protobuf \u{1}\u{2}".utf8)).encoded())))
        return seeds
    }
}
