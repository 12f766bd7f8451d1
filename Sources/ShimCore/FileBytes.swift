import LinuxSys

enum FileBytes {
    static func read(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        FileDescriptor.readAll(path, limit: limit)
    }

    static func text(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
