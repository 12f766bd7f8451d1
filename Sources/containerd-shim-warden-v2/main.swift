// containerd-shim-warden-v2: containerd runtime v2 shim (runtime type io.containerd.warden.v2).
// Thin main: everything lives in ShimCore.
import LinuxSys
import ShimCore

ShimCommand.main(arguments: Array(CommandLine.arguments.dropFirst()))
