import ContainerdAPI
import LinuxSys

/// Mounts containerd's rootfs description onto `<bundle>/rootfs`, and takes it down again.
enum Rootfs {
    /// Mount option words that are flags (as containerd's mount package reads them);
    /// everything else is passed to the filesystem as data.
    private static let flagOptions: [String: (set: Bool, flag: UInt)] = [
        "ro": (true, Mounts.readOnly), "rw": (false, Mounts.readOnly),
        "nosuid": (true, Mounts.noSuid), "suid": (false, Mounts.noSuid),
        "nodev": (true, Mounts.noDev), "dev": (false, Mounts.noDev),
        "noexec": (true, Mounts.noExec), "exec": (false, Mounts.noExec),
        "bind": (true, Mounts.bind), "rbind": (true, Mounts.bind | Mounts.recursive),
        "noatime": (true, Mounts.noAtime), "relatime": (true, Mounts.relAtime),
        "strictatime": (true, Mounts.strictAtime), "nodiratime": (true, Mounts.noDirAtime),
        "sync": (true, Mounts.synchronous),
    ]

    static func parseOptions(_ options: [String]) -> (flags: UInt, data: String) {
        var flags: UInt = 0
        var data: [String] = []
        for option in options {
            if let known = flagOptions[option] {
                if known.set { flags |= known.flag } else { flags &= ~known.flag }
            } else {
                data.append(option)
            }
        }
        return (flags, data.joined(separator: ","))
    }

    static func mount(_ mounts: [Containerd_Types_Mount], bundle: String) throws(ShimError) {
        guard !mounts.isEmpty else { return }
        let target = bundle + "/rootfs"
        do throws(Errno) {
            try Directories.make(target)
            for (index, mount) in mounts.enumerated() {
                let (flags, data) = parseOptions(mount.options)
                do throws(Errno) {
                    try Mounts.mount(source: mount.source, target: target, type: mount.type, flags: flags, data: data)
                } catch {
                    if index > 0 { unmount(bundle: bundle) }
                    throw error
                }
            }
        } catch {
            throw ShimError(.internal, "mounting the rootfs at \(target): \(error)")
        }
    }

    /// Unmounts every layer at `<bundle>/rootfs`; a busy mount is detached rather than left.
    static func unmount(bundle: String) {
        let target = bundle + "/rootfs"
        // Stacked mounts come off one at a time. (A `for … where` here once read mountinfo
        // sixteen times for a rootfs that was not mounted at all: the loop must end at once.)
        var attempts = 0
        while attempts < 16, Mounts.isMountPoint(target) {
            attempts += 1
            do throws(Errno) {
                try Mounts.unmount(target)
            } catch {
                try? Mounts.unmount(target, detach: true)
            }
        }
    }
}
