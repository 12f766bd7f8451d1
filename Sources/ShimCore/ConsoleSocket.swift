import LinuxSys

/// Where runsc is told to connect to hand over a process's terminal (`--console-socket`).
///
/// A Unix socket path holds at most 107 bytes (`sun_path`), and CRI ids are 64 characters:
/// `<root>/shim/k8s.io-<pod id>/console-<container id>-<exec id>.sock` is ~250. So the socket
/// sits beside the shim's other files only while its path fits; otherwise it gets a private
/// directory of its own (0700) under the temp directory, as containerd's runc shim does
/// (`/tmp/pty…/pty.sock`). Either way it is removed once runsc has connected, or the process
/// is gone.
struct ConsoleSocket: Sendable, Equatable {
    static let maximumPathBytes = 107

    let path: String
    /// The private directory holding it, removed with it (nil beside the scratch files).
    let privateDirectory: String?

    static func place(name: String, scratchDirectory: String, temporaryBase: String) throws(Errno) -> ConsoleSocket {
        let beside = "\(scratchDirectory)/console-\(name).sock"
        if beside.utf8.count <= maximumPathBytes { return ConsoleSocket(path: beside, privateDirectory: nil) }
        let directory = try Directories.makeTemporary(in: temporaryBase, prefix: "warden-pty-")
        let path = "\(directory)/console.sock"
        guard path.utf8.count <= maximumPathBytes else {
            Directories.removeTree(directory)
            throw Errno(code: Errno.ENAMETOOLONG, call: "console socket \(path): the temp directory's path is too long")
        }
        return ConsoleSocket(path: path, privateDirectory: directory)
    }

    /// The temp directory: $TMPDIR when a console socket fits under it, else /tmp.
    static func temporaryBase() -> String {
        if let tmpdir = ProcessEnvironment.value("TMPDIR"), tmpdir.hasPrefix("/"), tmpdir.utf8.count <= 64 {
            return tmpdir
        }
        return "/tmp"
    }

    func remove() {
        UnixSocket.remove(path: path)
        if let privateDirectory { Directories.removeTree(privateDirectory) }
    }
}
