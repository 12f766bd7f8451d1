/// rtnetlink messages, encoded and decoded as pure functions of bytes (tested with fixed bytes).
/// Only what network release needs: list links and addresses, set a link down, delete a link
/// or an address. Host byte order (little-endian on every platform Warden runs on).
public enum RouteMessage {
    public static let getLink: UInt16 = 18  // RTM_GETLINK
    public static let newLink: UInt16 = 16  // RTM_NEWLINK
    public static let deleteLink: UInt16 = 17  // RTM_DELLINK
    public static let getAddress: UInt16 = 22  // RTM_GETADDR
    public static let newAddress: UInt16 = 20  // RTM_NEWADDR
    public static let deleteAddress: UInt16 = 21  // RTM_DELADDR
    static let done: UInt16 = 3  // NLMSG_DONE
    static let error: UInt16 = 2  // NLMSG_ERROR

    static let request: UInt16 = 0x1  // NLM_F_REQUEST
    static let acknowledge: UInt16 = 0x4  // NLM_F_ACK
    static let dump: UInt16 = 0x300  // NLM_F_ROOT | NLM_F_MATCH

    public static let interfaceUp: UInt32 = 0x1  // IFF_UP
    public static let interfaceLoopback: UInt32 = 0x8  // IFF_LOOPBACK

    static let headerSize = 16
    static let linkAttributeName: UInt16 = 3  // IFLA_IFNAME
    static let linkAttributeInfo: UInt16 = 18  // IFLA_LINKINFO
    static let linkInfoKind: UInt16 = 1  // IFLA_INFO_KIND

    /// A link as RTM_NEWLINK reports it.
    public struct Link: Equatable, Sendable {
        public var index: Int32
        public var name: String
        public var flags: UInt32
        /// IFLA_INFO_KIND ("veth", "bridge", …), empty for devices without one.
        public var kind: String
        public var isUp: Bool { flags & RouteMessage.interfaceUp != 0 }
        public var isLoopback: Bool { flags & RouteMessage.interfaceLoopback != 0 }
    }

    /// An address as RTM_NEWADDR reports it: its link, and the message body (ifaddrmsg and
    /// attributes) to send back as RTM_DELADDR.
    public struct Address: Equatable, Sendable {
        public var linkIndex: Int32
        public var body: [UInt8]
    }

    /// One decoded message: type, sequence number and body (after the 16-byte header).
    public struct Message: Equatable, Sendable {
        public var type: UInt16
        public var sequence: UInt32
        public var body: [UInt8]
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    // MARK: encoding

    static func header(length: Int, type: UInt16, flags: UInt16, sequence: UInt32) -> [UInt8] {
        bytes(UInt32(length)) + bytes(type) + bytes(flags) + bytes(sequence) + bytes(UInt32(0))
    }

    /// ifinfomsg: family, pad, type, index, flags, change.
    static func interfaceInfo(index: Int32, flags: UInt32, change: UInt32) -> [UInt8] {
        [0, 0] + bytes(UInt16(0)) + bytes(UInt32(bitPattern: index)) + bytes(flags) + bytes(change)
    }

    static func message(type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        header(length: headerSize + body.count, type: type, flags: flags, sequence: sequence) + body
    }

    /// RTM_GETLINK dump of every link.
    public static func listLinks(sequence: UInt32) -> [UInt8] {
        message(type: getLink, flags: request | dump, sequence: sequence, body: interfaceInfo(index: 0, flags: 0, change: 0))
    }

    /// RTM_GETADDR dump of every address (any family).
    public static func listAddresses(sequence: UInt32) -> [UInt8] {
        // ifaddrmsg: family AF_UNSPEC, prefixlen, flags, scope, index.
        message(type: getAddress, flags: request | dump, sequence: sequence, body: [0, 0, 0, 0] + bytes(UInt32(0)))
    }

    /// RTM_NEWLINK clearing IFF_UP on one link (`ip link set dev X down`).
    public static func setLinkDown(index: Int32, sequence: UInt32) -> [UInt8] {
        message(
            type: newLink, flags: request | acknowledge, sequence: sequence,
            body: interfaceInfo(index: index, flags: 0, change: interfaceUp))
    }

    /// RTM_DELLINK of one link (a veth takes its peer with it).
    public static func deleteLink(index: Int32, sequence: UInt32) -> [UInt8] {
        message(
            type: deleteLink, flags: request | acknowledge, sequence: sequence,
            body: interfaceInfo(index: index, flags: 0, change: 0))
    }

    /// RTM_DELADDR of an address, echoing the body the dump reported.
    public static func deleteAddress(_ address: Address, sequence: UInt32) -> [UInt8] {
        message(type: deleteAddress, flags: request | acknowledge, sequence: sequence, body: address.body)
    }

    // MARK: decoding

    /// Splits a datagram into messages. Malformed lengths are an error naming the offset.
    public static func messages(_ datagram: [UInt8]) throws(DecodeError) -> [Message] {
        var result: [Message] = []
        var offset = 0
        while offset + headerSize <= datagram.count {
            let length = Int(u32(datagram, offset))
            guard length >= headerSize, offset + length <= datagram.count else {
                throw DecodeError(description: "netlink message at offset \(offset) claims \(length) bytes of \(datagram.count - offset)")
            }
            result.append(
                Message(
                    type: u16(datagram, offset + 4), sequence: u32(datagram, offset + 8),
                    body: Array(datagram[(offset + headerSize)..<(offset + length)])))
            offset += align(length)
        }
        return result
    }

    /// The errno of an NLMSG_ERROR body (0 is an acknowledgement), negated as the kernel sends it.
    public static func errorCode(_ message: Message) -> Int32? {
        guard message.type == error, message.body.count >= 4 else { return nil }
        return -Int32(bitPattern: u32(message.body, 0))
    }

    public static func isDone(_ message: Message) -> Bool { message.type == done }

    public static func link(_ message: Message) throws(DecodeError) -> Link {
        guard message.type == newLink, message.body.count >= 16 else {
            throw DecodeError(description: "not a link message (type \(message.type), \(message.body.count) bytes)")
        }
        var link = Link(
            index: Int32(bitPattern: u32(message.body, 4)), name: "", flags: u32(message.body, 8), kind: "")
        for (type, value) in try attributes(message.body, from: 16) {
            switch type {
            case linkAttributeName: link.name = string(value)
            case linkAttributeInfo:
                for (infoType, infoValue) in try attributes(value, from: 0) where infoType == linkInfoKind {
                    link.kind = string(infoValue)
                }
            default: break
            }
        }
        return link
    }

    public static func address(_ message: Message) throws(DecodeError) -> Address {
        guard message.type == newAddress, message.body.count >= 8 else {
            throw DecodeError(description: "not an address message (type \(message.type), \(message.body.count) bytes)")
        }
        return Address(linkIndex: Int32(bitPattern: u32(message.body, 4)), body: message.body)
    }

    /// rtattr list: (type without the nested/byte-order bits, value).
    static func attributes(_ bytes: [UInt8], from start: Int) throws(DecodeError) -> [(UInt16, [UInt8])] {
        var result: [(UInt16, [UInt8])] = []
        var offset = start
        while offset + 4 <= bytes.count {
            let length = Int(u16(bytes, offset))
            guard length >= 4, offset + length <= bytes.count else {
                throw DecodeError(description: "attribute at offset \(offset) claims \(length) bytes of \(bytes.count - offset)")
            }
            result.append((u16(bytes, offset + 2) & 0x3FFF, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += align(length)
        }
        return result
    }

    static func align(_ length: Int) -> Int { (length + 3) & ~3 }

    static func string(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}
