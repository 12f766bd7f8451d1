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
}

/// The real runsc under test: Debian 12's in /usr/bin, or WARDEN_RUNSC (another release's,
/// from scripts/releases.sh).
public enum RunscUnderTest {
    public static var binary: String {
        let chosen = ProcessInfo.processInfo.environment["WARDEN_RUNSC"] ?? ""
        return chosen.isEmpty ? "/usr/bin/runsc" : chosen
    }
}
