import LinuxSys

/// Version of this build, printed by `-v`.
public let wardenVersion = "0.1.0"

/// Entry point of the shim binary. The `start`/`delete` actions and the task service arrive
/// with the task-service work; until then the binary answers `-v` and refuses the rest with
/// a clear message and a non-zero exit, so containerd reports a failed start rather than a
/// hang.
public enum ShimCommand {
    public static func run(arguments: [String]) -> Int32 {
        if arguments.contains("-v") || arguments.contains("-version") || arguments.contains("--version") {
            Console.output("containerd-shim-warden-v2:\n  Version: \(wardenVersion)\n  Runtime: io.containerd.warden.v2")
            return 0
        }
        let action = arguments.last ?? ""
        Console.error("containerd-shim-warden-v2: action \"\(action)\" is not available in this build")
        return 2
    }
}
