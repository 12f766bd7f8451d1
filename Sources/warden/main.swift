// warden: the operator CLI (design.md §7). This build has `config check`; ps, doctor,
// sweep and metrics arrive with the task service and termination work.
import Config
import LinuxSys

let usage = """
    usage: warden config check [FILE]   validate a warden.toml (default \(WardenConfig.defaultPath))
    """

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "config" where arguments.count >= 2 && arguments[1] == "check" && arguments.count <= 3:
    let path = arguments.count == 3 ? arguments[2] : WardenConfig.defaultPath
    do {
        let config = try WardenConfig.load(path: path) { FileDescriptor.readAll($0) }
        Console.output(
            "\(path): ok (runsc \(config.runsc), root \(config.root), stop_deadline \(config.deadlines.stopDeadline), seccomp \(config.seccompMode.rawValue))"
        )
        exit(0)
    } catch {
        Console.error("warden: \(error)")
        exit(1)
    }
default:
    Console.error(usage)
    exit(2)
}
