import SwiftProtobuf

extension Google_Protobuf_Any {
    /// Packs `message` the way containerd's typeurl expects: the type URL is the bare
    /// message name ("containerd.events.TaskExit"), without the "type.googleapis.com/"
    /// prefix, which containerd 1.6's typeurl cannot resolve.
    public init(containerdMessage message: some SwiftProtobuf.Message) throws {
        self.init()
        typeURL = type(of: message).protoMessageName
        value = try message.serializedData()
    }
}
