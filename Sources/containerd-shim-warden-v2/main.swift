// containerd-shim-warden-v2: containerd runtime v2 shim (runtime type io.containerd.warden.v2).
// Thin main: everything lives in ShimCore.
import LinuxSys
import ShimCore

// Before any thread exists, so every thread inherits it: the Supervisor then learns of
// orphans' exits from a SIGCHLD signalfd instead of sweeping on a timer.
ChildProcesses.blockExitSignal()
exit(await ShimCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
