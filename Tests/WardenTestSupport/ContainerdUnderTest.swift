import Foundation

/// The containerd the integration tests drive: Debian's 1.6.20 in /usr/bin, or the one in
/// WARDEN_CONTAINERD_DIR (a directory holding `containerd`, `ctr` and
/// `containerd-shim-runc-v2` of another release: scripts/releases.sh prints it per release set).
public enum ContainerdUnderTest {
    public static var directory: String {
        let chosen = ProcessInfo.processInfo.environment["WARDEN_CONTAINERD_DIR"] ?? ""
        return chosen.isEmpty ? "/usr/bin" : chosen
    }
    public static var containerd: String { directory + "/containerd" }
    public static var ctr: String { directory + "/ctr" }
    public static var runcShim: String { directory + "/containerd-shim-runc-v2" }

    /// (major, minor) of `containerd --version` ("containerd github.com/… 2.3.4+unknown").
    public static var version: (major: Int, minor: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: containerd)
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return (0, 0) }
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let words = text.split(separator: " ")
        let numbers = (words.count > 2 ? words[2] : "").drop { $0 == "v" }.split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
        return (numbers.first ?? 0, numbers.count > 1 ? numbers[1] : 0)
    }

    /// containerd 2.3+ tells each shim where to put its socket (BootstrapParams `socket_dir`),
    /// by default /run/containerd/s whatever its own state dir: a private containerd is given
    /// `<state>/s`, where its shims' sockets were before 2.3, so nothing of a test lands there.
    public static func socketDirConfig(state: String) -> String {
        let (major, minor) = version
        guard major > 2 || (major == 2 && minor >= 3) else { return "" }
        return "[plugins.\"io.containerd.shim.v1.manager\"]\n  socket_dir = \"\(state)/s\"\n"
    }
}

/// The real runsc under test: Debian 12's in /usr/bin, or WARDEN_RUNSC (another release's,
/// from scripts/releases.sh).
public enum RunscUnderTest {
    public static var binary: String {
        let chosen = ProcessInfo.processInfo.environment["WARDEN_RUNSC"] ?? ""
        return chosen.isEmpty ? "/usr/bin/runsc" : chosen
    }
}
