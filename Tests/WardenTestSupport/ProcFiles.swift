import Foundation

/// The whole of a /proc file, read to its end. Foundation's `String(contentsOfFile:)` and
/// `FileManager.contents(atPath:)` read a procfs file (whose size is 0) in one read of about a
/// page: mountinfo, smaps or a long environ come back cut short, and an audit of what they
/// list would miss what is past the first 4 KiB.
public func procBytes(_ path: String) -> Data? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    do {
        return try handle.readToEnd() ?? Data()
    } catch {
        return nil
    }
}

/// `procBytes` as UTF-8 text.
public func procText(_ path: String) -> String? {
    procBytes(path).map { String(decoding: $0, as: UTF8.self) }
}
