/// ttrpc framing (containerd/ttrpc PROTOCOL.md, channel.go; reference/shim-contract.md §2).
///
/// Every message is a 10-byte header followed by `dataLength` bytes:
/// ```
/// 0..3  data length  u32 big-endian, at most 4 MiB; byte 0 is reserved (0) since length < 16 MiB
/// 4..7  stream id    u32 big-endian, odd for client-initiated streams
/// 8     type         u8: 1 request, 2 response, 3 data
/// 9     flags        u8: meaning depends on the type
/// ```
public struct FrameHeader: Equatable, Sendable {
    /// `messageHeaderLength` in channel.go.
    public static let length = 10
    /// `messageLengthMax` in channel.go: larger messages are refused with ResourceExhausted.
    public static let maxDataLength = 4 << 20

    public var dataLength: UInt32
    public var streamID: UInt32
    /// Raw type byte, kept raw so that an unknown type can be reported rather than lost.
    public var type: UInt8
    public var flags: FrameFlags

    public init(dataLength: UInt32, streamID: UInt32, type: UInt8, flags: FrameFlags) {
        self.dataLength = dataLength
        self.streamID = streamID
        self.type = type
        self.flags = flags
    }

    public var messageType: MessageType? { MessageType(rawValue: type) }

    func encode(into out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: dataLength >> 24))
        out.append(UInt8(truncatingIfNeeded: dataLength >> 16))
        out.append(UInt8(truncatingIfNeeded: dataLength >> 8))
        out.append(UInt8(truncatingIfNeeded: dataLength))
        out.append(UInt8(truncatingIfNeeded: streamID >> 24))
        out.append(UInt8(truncatingIfNeeded: streamID >> 16))
        out.append(UInt8(truncatingIfNeeded: streamID >> 8))
        out.append(UInt8(truncatingIfNeeded: streamID))
        out.append(type)
        out.append(flags.rawValue)
    }

    static func decode<C: RandomAccessCollection<UInt8>>(_ bytes: C) -> FrameHeader where C.Index == Int {
        let b = bytes.startIndex
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[b + at]) << 24 | UInt32(bytes[b + at + 1]) << 16 | UInt32(bytes[b + at + 2]) << 8
                | UInt32(bytes[b + at + 3])
        }
        return FrameHeader(dataLength: u32(0), streamID: u32(4), type: bytes[b + 8], flags: FrameFlags(rawValue: bytes[b + 9]))
    }
}

public enum MessageType: UInt8, Sendable {
    /// Starts a stream.
    case request = 0x01
    /// Final message of a stream.
    case response = 0x02
    /// Stream data (ttrpc ≥ 1.2 streaming; containerd 1.6's ttrpc 1.1.1 never sends it).
    case data = 0x03
}

public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The sender is done sending (request, data).
    public static let remoteClosed = FrameFlags(rawValue: 0x01)
    /// More data follows: a non-unary request.
    public static let remoteOpen = FrameFlags(rawValue: 0x02)
    /// The data frame carries no payload.
    public static let noData = FrameFlags(rawValue: 0x04)
}

/// One complete frame.
public struct Frame: Equatable, Sendable {
    public var streamID: UInt32
    public var type: UInt8
    public var flags: FrameFlags
    public var payload: [UInt8]

    public init(streamID: UInt32, type: MessageType, flags: FrameFlags = [], payload: [UInt8]) {
        self.init(streamID: streamID, rawType: type.rawValue, flags: flags, payload: payload)
    }

    public init(streamID: UInt32, rawType: UInt8, flags: FrameFlags, payload: [UInt8]) {
        self.streamID = streamID
        self.type = rawType
        self.flags = flags
        self.payload = payload
    }

    public var messageType: MessageType? { MessageType(rawValue: type) }

    /// Header plus payload. Refuses payloads over 4 MiB, as Go's sender does
    /// (`OversizedMessageError`), so Warden never emits a frame its peer must discard.
    public func encoded() throws(FrameError) -> [UInt8] {
        guard payload.count <= FrameHeader.maxDataLength else {
            throw .oversizedToSend(length: payload.count)
        }
        var out: [UInt8] = []
        out.reserveCapacity(FrameHeader.length + payload.count)
        FrameHeader(dataLength: UInt32(payload.count), streamID: streamID, type: type, flags: flags).encode(into: &out)
        out.append(contentsOf: payload)
        return out
    }
}

public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reserved high byte of the length is set: not ttrpc, the stream cannot be resynchronised.
    case corruptLength(streamID: UInt32, length: UInt32)
    /// A local attempt to send more than 4 MiB.
    case oversizedToSend(length: Int)

    public var description: String {
        switch self {
        case .corruptLength(let streamID, let length):
            return "corrupt ttrpc frame on stream \(streamID): length \(length) exceeds the 16 MiB framing limit"
        case .oversizedToSend(let length):
            return "message of \(length) bytes exceeds the ttrpc maximum of \(FrameHeader.maxDataLength)"
        }
    }
}

/// What the decoder yields.
public enum DecodedFrame: Equatable, Sendable {
    case frame(Frame)
    /// A frame over 4 MiB. Reported once its header arrives; its payload is skipped as it
    /// streams in, so the connection stays usable (the peer gets ResourceExhausted).
    case oversized(streamID: UInt32, type: UInt8, length: UInt32)
}

/// Incremental ttrpc frame decoder: a pure state machine over bytes, fed however the bytes
/// arrive (one at a time, in batches, several frames at once).
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Payload bytes of an oversized frame still to discard.
    private var skipRemaining = 0

    public init() {}

    /// Bytes held but not yet decoded.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append<S: Sequence<UInt8>>(_ bytes: S) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func next() throws(FrameError) -> DecodedFrame? {
        if skipRemaining > 0 {
            let skip = min(skipRemaining, buffer.count - readIndex)
            readIndex += skip
            skipRemaining -= skip
            compact()
            if skipRemaining > 0 { return nil }
        }
        guard buffer.count - readIndex >= FrameHeader.length else { return nil }
        let header = FrameHeader.decode(buffer[readIndex..<(readIndex + FrameHeader.length)])
        if header.dataLength >= 1 << 24 {
            throw .corruptLength(streamID: header.streamID, length: header.dataLength)
        }
        let length = Int(header.dataLength)
        if length > FrameHeader.maxDataLength {
            readIndex += FrameHeader.length
            skipRemaining = length
            let skip = min(skipRemaining, buffer.count - readIndex)
            readIndex += skip
            skipRemaining -= skip
            compact()
            return .oversized(streamID: header.streamID, type: header.type, length: header.dataLength)
        }
        guard buffer.count - readIndex >= FrameHeader.length + length else { return nil }
        let start = readIndex + FrameHeader.length
        let payload = Array(buffer[start..<(start + length)])
        readIndex = start + length
        compact()
        return .frame(Frame(streamID: header.streamID, rawType: header.type, flags: header.flags, payload: payload))
    }

    /// Drops consumed bytes once they dominate the buffer, keeping memory proportional to
    /// what is pending rather than to everything ever received.
    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            readIndex = 0
        } else if readIndex > 4096 && readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }
}
