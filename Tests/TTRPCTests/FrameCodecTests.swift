import Testing
import WardenTestSupport
@testable import TTRPC

/// The ttrpc frame codec on fixed byte strings (containerd/ttrpc channel.go layout).
@Suite struct FrameCodecTests {
    /// A unary request on stream 1 carrying the 3 bytes "abc".
    static let requestBytes: [UInt8] = [
        0x00, 0x00, 0x00, 0x03,  // data length: 3
        0x00, 0x00, 0x00, 0x01,  // stream id: 1 (client-initiated, odd)
        0x01,  // type: request
        0x00,  // flags: none (unary)
        0x61, 0x62, 0x63,  // payload "abc"
    ]
    /// A response on stream 0x0102_0305 with an empty payload.
    static let emptyResponseBytes: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // data length: 0
        0x01, 0x02, 0x03, 0x05,  // stream id: 16909061 (big-endian)
        0x02,  // type: response
        0x00,  // flags
    ]
    /// A data frame closing stream 7 with no payload (ttrpc 1.2 streaming).
    static let closingDataBytes: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // data length: 0
        0x00, 0x00, 0x00, 0x07,  // stream id: 7
        0x03,  // type: data
        0x05,  // flags: remote closed (0x01) | no data (0x04)
    ]

    static let request = Frame(streamID: 1, type: .request, payload: Array("abc".utf8))
    static let emptyResponse = Frame(streamID: 0x0102_0305, type: .response, payload: [])
    static let closingData = Frame(streamID: 7, type: .data, flags: [.remoteClosed, .noData], payload: [])

    @Test func encodesFixedBytes() throws {
        #expect(try Self.request.encoded() == Self.requestBytes)
        #expect(try Self.emptyResponse.encoded() == Self.emptyResponseBytes)
        #expect(try Self.closingData.encoded() == Self.closingDataBytes)
    }

    @Test func decodesFixedBytes() throws {
        for (bytes, frame) in [
            (Self.requestBytes, Self.request), (Self.emptyResponseBytes, Self.emptyResponse),
            (Self.closingDataBytes, Self.closingData),
        ] {
            var decoder = FrameDecoder()
            decoder.append(bytes)
            #expect(try decoder.next() == .frame(frame))
            #expect(try decoder.next() == nil)
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func headerFieldsAreBigEndian() {
        let header = FrameHeader.decode([0x00, 0x40, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01, 0x02, 0x00])
        #expect(header.dataLength == 4 << 20)
        #expect(header.streamID == 0x8000_0001)
        #expect(header.messageType == .response)
        #expect(header.flags == [])
    }

    @Test func dripFedOneByteAtATime() throws {
        let stream = Self.requestBytes + Self.emptyResponseBytes + Self.closingDataBytes
        var decoder = FrameDecoder()
        var frames: [DecodedFrame] = []
        for byte in stream {
            decoder.append([byte])
            while let frame = try decoder.next() { frames.append(frame) }
        }
        #expect(frames == [.frame(Self.request), .frame(Self.emptyResponse), .frame(Self.closingData)])
    }

    @Test func batchedFramesInOneRead() throws {
        var decoder = FrameDecoder()
        decoder.append(Self.requestBytes + Self.requestBytes + Self.emptyResponseBytes + Self.requestBytes.prefix(4))
        #expect(try decoder.next() == .frame(Self.request))
        #expect(try decoder.next() == .frame(Self.request))
        #expect(try decoder.next() == .frame(Self.emptyResponse))
        #expect(try decoder.next() == nil)  // a partial header waits for more bytes
        decoder.append(Self.requestBytes.dropFirst(4))
        #expect(try decoder.next() == .frame(Self.request))
    }

    @Test func maximumSizeFrameIsAccepted() throws {
        let payload = [UInt8](repeating: 0x5a, count: FrameHeader.maxDataLength)
        let frame = Frame(streamID: 3, type: .request, payload: payload)
        var decoder = FrameDecoder()
        decoder.append(try frame.encoded())
        #expect(try decoder.next() == .frame(frame))
    }

    /// An oversized frame is reported at its header and its payload skipped, so the valid
    /// frame after it on the same connection still decodes.
    @Test(arguments: [1, 1000, 70_000, FrameHeader.maxDataLength + 20])
    func oversizeThenValidOnOneConnection(chunkSize: Int) throws {
        let length = UInt32(FrameHeader.maxDataLength + 1)
        var stream: [UInt8] = [
            0x00, 0x40, 0x00, 0x01,  // data length: 4 MiB + 1, over the limit
            0x00, 0x00, 0x00, 0x09,  // stream id: 9
            0x01, 0x00,  // request, no flags
        ]
        stream += [UInt8](repeating: 0xee, count: Int(length))
        stream += Self.requestBytes
        var decoder = FrameDecoder()
        var frames: [DecodedFrame] = []
        var offset = 0
        var largestBuffered = 0
        while offset < stream.count {
            let end = min(offset + chunkSize, stream.count)
            decoder.append(stream[offset..<end])
            offset = end
            while let frame = try decoder.next() { frames.append(frame) }
            largestBuffered = max(largestBuffered, decoder.bufferedByteCount)
        }
        #expect(frames == [.oversized(streamID: 9, type: 1, length: length), .frame(Self.request)])
        // Skipped bytes are dropped as they arrive, never accumulated.
        #expect(largestBuffered <= max(chunkSize, Self.requestBytes.count))
    }

    @Test func corruptLengthIsUnrecoverable() {
        var decoder = FrameDecoder()
        decoder.append([0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50])  // "GET / HTTP"
        #expect(throws: FrameError.corruptLength(streamID: 0x2f20_4854, length: 0x4745_5420)) {
            try decoder.next()
        }
    }

    /// Random bytes never crash the decoder: it yields frames, waits, or throws.
    @Test func garbageNeverCrashes() {
        var generator = SplitMix64(seed: 0x5741_5244_454e)
        for _ in 0..<2000 {
            var decoder = FrameDecoder()
            let count = Int(generator.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if generator.next() % 2 == 0, bytes.count > 3 { bytes[0] = 0 }  // often a plausible length
            decoder.append(bytes)
            do {
                while try decoder.next() != nil {}
            } catch {
                #expect(error is FrameError)
            }
        }
    }

    @Test func refusesToEncodeOversizedPayload() {
        let frame = Frame(streamID: 1, type: .response, payload: [UInt8](repeating: 0, count: FrameHeader.maxDataLength + 1))
        #expect(throws: FrameError.oversizedToSend(length: FrameHeader.maxDataLength + 1)) { try frame.encoded() }
    }

    @Test func unknownTypeIsPreservedForTheServerToReject() throws {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0])
        guard case .frame(let frame) = try decoder.next() else {
            Issue.record("expected a frame")
            return
        }
        #expect(frame.type == 0x7f)
        #expect(frame.messageType == nil)
    }
}
