import LinuxSys

/// The whole of a /proc file, read to its end by LinuxSys (as the shim reads it). Foundation's
/// `String(contentsOfFile:)` and `FileManager.contents(atPath:)` read a procfs file (whose size
/// is 0) in one read of about a page: mountinfo, smaps or a long environ come back cut short,
/// and an audit of what they list would miss what is past the first 4 KiB.
public func procBytes(_ path: String) -> [UInt8]? {
    FileDescriptor.readAll(path, limit: 16 << 20)
}

/// `procBytes` as UTF-8 text.
public func procText(_ path: String) -> String? {
    procBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

/// The mount points at or below `directory` in this process's mount namespace, deepest first
/// (the order to unmount them in).
public func mountPoints(under directory: String) -> [String] {
    Mounts.current().map(\.mountPoint).filter { $0 == directory || $0.hasPrefix(directory + "/") }.sorted(by: >)
}
