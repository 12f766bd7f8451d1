import Foundation

/// The containerd the integration tests drive: Debian's 1.6.20 in /usr/bin, or the one in
/// WARDEN_CONTAINERD_DIR (a directory holding `containerd`, `ctr` and
/// `containerd-shim-runc-v2` of another release, e.g. 1.7 or 2.x built here; README "Test").
public enum ContainerdUnderTest {
    public static var directory: String {
        let chosen = ProcessInfo.processInfo.environment["WARDEN_CONTAINERD_DIR"] ?? ""
        return chosen.isEmpty ? "/usr/bin" : chosen
    }
    public static var containerd: String { directory + "/containerd" }
    public static var ctr: String { directory + "/ctr" }
    public static var runcShim: String { directory + "/containerd-shim-runc-v2" }
}
