import Config
import ContainerdAPI
import Deadlines
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf

/// `delete`: containerd's cleanup after a shim died (or after a normal teardown). Bounded by
/// `delete_deadline`: `runsc delete --force`, unmount `<bundle>/rootfs`, remove the dead
/// shim's socket, then print a DeleteResponse (exit status 137) on stdout.
enum ShimDelete {
    static func run(_ flags: ShimFlags) async -> Int32 {
        guard let bundle = flags.bundle.isEmpty ? ProcessEnvironment.workingDirectory : flags.bundle else {
            Console.error("delete: cannot determine the bundle directory")
            return 1
        }
        let recordedConfig = FileDescriptor.readText(bundle + "/" + ShimCommand.bundleConfigFile)?.trimmingWhitespace
        let config: WardenConfig
        do throws(ConfigError) {
            (config, _) = try ShimCommand.loadConfig(path: recordedConfig)
        } catch {
            Console.error("delete: \(error); using defaults")
            config = WardenConfig()
        }
        var warnings: [String] = []
        do throws(Errno) {
            let supervisor = try Supervisor()
            let scratch = ShimServer.scratchDirectory(config: config, flags: flags) + "-delete"
            try Directories.make(scratch)
            defer {
                FileDescriptor.removeDirectory(scratch)
                FileDescriptor.removeDirectory(config.root + "/shim")  // only if no live shim uses it
            }
            let runsc = Runsc(
                configuration: ShimServer.runscConfiguration(
                    config, scratchDirectory: scratch, callTimeout: config.deadlines.deleteDeadline),
                supervisor: supervisor)
            do throws(RunscError) {
                try await runsc.delete(flags.id, force: true)
            } catch {
                if case .notFound = error {} else { warnings.append("runsc delete --force \(flags.id): \(error)") }
            }
            supervisor.shutdown()
        } catch {
            warnings.append("\(error)")
        }
        Rootfs.unmount(bundle: bundle)
        // The dead shim's socket (a live one is left alone: other containers of the pod use it).
        if let address = FileDescriptor.readText(bundle + "/address")?.trimmingWhitespace, address.hasPrefix("unix://") {
            let path = String(address.dropFirst("unix://".count))
            if let fd = try? UnixSocket.connect(path: path) {
                UnixSocket.close(fd)
            } else {
                UnixSocket.remove(path: path)
            }
        }
        warnings.forEach { Console.error($0) }
        var response = Containerd_Task_V2_DeleteResponse()
        response.exitStatus = 137
        let (seconds, nanos) = WallClock.now()
        response.exitedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
        guard let bytes: [UInt8] = try? response.serializedBytes() else { return 1 }
        do throws(Errno) {
            try FileDescriptor.writeAll(1, bytes)
        } catch {
            return 1
        }
        return 0
    }
}
