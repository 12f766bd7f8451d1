// The long-lived processes a fake sandbox is made of: the sandbox, each container's init,
// each exec and the gofer, started by the verbs and living as runsc's would.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys
import NetNS

extension FakeRunsc {
    // MARK: sandbox and gofer roles

    /// Waits for start (the state saying running), runs the container process, records its
    /// status and exits with it.
    static func sandboxMain(_ arguments: [String], root: String, faults: Faults, panicLog: String?) -> Int32 {
        guard let id = arguments.first else { return 2 }
        guard awaitCreated(id, root: root) else { return 1 }
        if let created = try? load(id, root: root) { ControlServer.start(created, root: root) }
        while true {
            guard let state = try? load(id, root: root) else { return 1 }  // deleted before start
            if state.status == "running" { break }
            Sleep.milliseconds(10)
        }
        guard var state = try? load(id, root: root),
              let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
              let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes)),
              !spec.process.args.isEmpty
        else { return 1 }
        var command = spec.process.args
        if faults.contains(.ignoreSigterm) {
            // An ignored disposition survives exec: the process never sees SIGTERM.
            command = ["/bin/sh", "-c", "trap '' TERM; exec \"$0\" \"$@\""] + command
        }
        guard let pid = startContainerProcess(command, spec: spec, state: &state, root: root) else { return 127 }
        if faults.contains(.unkillableUntilNetnsDown) { holdUntilNetworkDown(id, root: root, container: pid) }
        if faults.contains(.oomKillSandbox) { exhaustMemoryWhenTold(state, root: root, container: pid) }
        if faults.contains(.panicSandbox), panicWhenTold(root: root, container: pid, panicLog: panicLog) { return 2 }
        let status = ChildProcesses.waitBlocking(pid)
        // As in gVisor, the container's other processes do not outlive its init.
        ChildProcesses.signalGroup(pid, 9)
        var final = (try? load(id, root: root)) ?? state
        final.status = "stopped"
        final.exitStatus = Int32(status.code)
        try? save(final, root: root)
        return Int32(status.code)
    }

    /// panic-sandbox, the sandbox side: waits for `panic-now`, then writes what the sentry's
    /// Go runtime writes on a panic (the line runsc 2024 built with Go 1.26 panics with) and
    /// kills its container. True when it panicked (the sandbox then exits with status 2).
    static func panicWhenTold(root: String, container: Int32, panicLog: String?) -> Bool {
        let trigger = "\(Faults.directory(root: root))/panic-now"
        while processAlive(container), !FileDescriptor.exists(trigger) { Sleep.milliseconds(20) }
        guard processAlive(container) else { return false }
        let report = """
            panic: running on goroutine 20044225970656 (task goroutine for kernel.Task 0xc000a4e000 is 0)

            goroutine 20044225970656 [running]:
            gvisor.dev/gvisor/pkg/sentry/kernel.(*Task).assertTaskGoroutine(...)
            	pkg/sentry/kernel/task_sched.go:170 +0x1b4
            gvisor.dev/gvisor/pkg/sentry/kernel.(*Task).run(0xc000a4e000, 0x1)
            	pkg/sentry/kernel/task_run.go:97 +0x2a5

            """
        let destination = panicLog.flatMap { try? FileDescriptor.open($0, forWriting: true, append: true) } ?? 2
        try? FileDescriptor.writeAll(destination, Array(report.utf8))
        if destination != 2 { FileDescriptor.close(destination) }
        record(root: root, "panic-sandbox: panicked (log \(panicLog ?? "stderr"))")
        ChildProcesses.signalGroup(container, 9)
        _ = ChildProcesses.waitBlocking(container)
        return true
    }

    /// oom-kill-sandbox, the sandbox side: waits for `oom-now`, then makes the kernel OOM-kill
    /// this process in its own memory cgroup (v1 `memory.limit_in_bytes`; swap limited too
    /// where the kernel accounts it, so nothing is swapped out instead).
    static func exhaustMemoryWhenTold(_ state: State, root: String, container: Int32) {
        let trigger = "\(Faults.directory(root: root))/oom-now"
        while processAlive(container), !FileDescriptor.exists(trigger) { Sleep.milliseconds(20) }
        guard processAlive(container), let cgroupsPath = state.cgroupsPath,
            let memory = Cgroups.directories(of: cgroupsPath, in: v1Hierarchies()).first(where: {
                FileDescriptor.exists($0 + "/memory.limit_in_bytes")
            }),
            let usageText = FileDescriptor.readAll(memory + "/memory.usage_in_bytes"),
            let usage = UInt64(String(decoding: usageText, as: UTF8.self).filter(\.isNumber))
        else {
            record(root: root, "oom-kill-sandbox: no memory cgroup to exhaust")
            return
        }
        let limit = usage + 4 << 20
        for file in ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"] where FileDescriptor.exists("\(memory)/\(file)") {
            do throws(Errno) {  // a control file: written in place, never replaced
                let fd = try FileDescriptor.open("\(memory)/\(file)", forWriting: true, append: true)
                defer { FileDescriptor.close(fd) }
                try FileDescriptor.writeAll(fd, Array("\(limit)".utf8))
            } catch {
                record(root: root, "oom-kill-sandbox: cannot set \(file): \(error)")
            }
        }
        record(root: root, "oom-kill-sandbox: limit \(limit) in \(memory)")
        var chunks: [UnsafeMutableRawPointer] = []
        for _ in 0..<4096 {  // 4 GiB at most: far past any limit set above
            let chunk = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            for offset in stride(from: 0, to: 1 << 20, by: 4096) { chunk.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
            chunks.append(chunk)
        }
        record(root: root, "oom-kill-sandbox: allocated \(chunks.count) MiB and was not killed")
    }

    /// unkillable-until-netns-down, the sandbox side: watches the pod's links; when they are all
    /// down, records it and delivers a kill that was held back. Returns when the container exited.
    static func holdUntilNetworkDown(_ id: String, root: String, container: Int32) {
        var recordedDown = false
        while processAlive(container) {
            guard let state = try? load(id, root: root) else { return }
            if !recordedDown, !networkLinksUp(state) {
                recordedDown = true
                record(root: root, "links-down")
            }
            if recordedDown, let signal = state.pendingSignal {
                ChildProcesses.signalGroup(container, signal)
                var cleared = state
                cleared.pendingSignal = nil
                try? save(cleared, root: root)
            }
            Sleep.milliseconds(20)
        }
    }

    /// Whether any non-loopback link of the container's network namespace is up (false when
    /// it has no namespace of its own, or it cannot be read).
    static func networkLinksUp(_ state: State) -> Bool {
        guard let bytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(bytes)),
            let path = spec.networkNamespacePath,
            let links = try? NetworkNamespace(path: path).links()
        else { return false }
        return links.contains { !$0.isLoopback && $0.isUp }
    }

    /// Appends a line to `<root>/fault-log` (what a fault saw, in order, for the tests).
    /// `record`, only where a test put a faults file (it reads the log): otherwise the log
    /// would be a file the pod's runsc root keeps.
    static func recordIfWatched(root: String, _ line: String) {
        guard FileDescriptor.exists("\(Faults.directory(root: root))/faults") else { return }
        record(root: root, line)
    }

    static func record(root: String, _ line: String) {
        guard let fd = try? FileDescriptor.openForAppend("\(Faults.directory(root: root))/fault-log") else { return }
        defer { FileDescriptor.close(fd) }
        try? FileDescriptor.writeAll(fd, Array("\(line)\n".utf8))
    }

    /// Starts a container's process with this process's stdio, in its own session and process
    /// group (so the whole container can be killed at once), marked so that tests find anything
    /// it leaves behind; recorded in the state. nil (state stopped, 127) if it cannot start.
    static func startContainerProcess(_ command: [String], spec: Spec, state: inout State, root: String) -> Int32? {
        let (path, args) = commandLine(command, bundle: state.bundle, spec: spec)
        let env = (spec.process.env ?? environment()) + ["WARDEN_FAKE_RUNSC_CONTAINER=\(root)/\(state.id)"]
        guard let pid = try? Spawn.spawn(
            path: path, arguments: args, environment: env, stdin: 0, stdout: 1, stderr: 2, newSession: true)
        else {
            state.status = "stopped"
            state.exitStatus = 127
            try? save(state, root: root)
            return nil
        }
        state.containerPid = pid
        try? save(state, root: root)
        return pid
    }

    /// As runsc does for a terminal: a new pty whose master goes to the console socket; the
    /// returned slave becomes the process's stdio.
    static func sendTerminal(to consoleSocket: String) throws -> Int32 {
        let pty = try Terminal.openPair()
        defer { FileDescriptor.close(pty.master) }
        let connection = try UnixSocket.connect(path: consoleSocket)
        defer { UnixSocket.close(connection) }
        try UnixSocket.sendDescriptor(connection, pty.master)
        return pty.slave
    }

    /// Runs `args` inside the bundle's rootfs (chroot), as a container would see it; a bundle
    /// without a populated rootfs (the driver's unit tests) runs it on the host.
    static func commandLine(_ args: [String], bundle: String, spec: Spec) -> (String, [String]) {
        let program = args.first ?? "/bin/true"
        let path = program.hasPrefix("/") ? program : "/bin/\(program)"
        let rootPath = spec.root?.path ?? "rootfs"
        let rootfs = rootPath.hasPrefix("/") ? rootPath : "\(bundle)/\(rootPath)"
        if FileDescriptor.exists("\(rootfs)/bin") {
            return ("/usr/sbin/chroot", [rootfs, path] + args.dropFirst())
        }
        // A rootfs of one static binary and no shell (Warden's pause rootfs): that binary.
        if program.hasPrefix("/"), FileDescriptor.exists(rootfs + program) {
            return (rootfs + program, Array(args.dropFirst()))
        }
        return (path, Array(args.dropFirst()))
    }

    /// A subcontainer's process (started by `start` with its stdio): exits with the process,
    /// and takes it down if the sandbox dies first (nothing outlives the sandbox in gVisor).
    static func containerMain(_ arguments: [String], root: String, faults: Faults) -> Int32 {
        guard let id = arguments.first, var state = try? load(id, root: root),
            let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes))
        else { return 1 }
        guard let pid = startContainerProcess(spec.process.args, spec: spec, state: &state, root: root) else { return 127 }
        var status: Int32 = 137
        while true {
            if let exit = ChildProcesses.reap(pid) {
                status = Int32(exit.code)
                break
            }
            if !processAlive(state.sandboxPid) {
                ChildProcesses.signalGroup(pid, 9)
                _ = ChildProcesses.waitBlocking(pid)
                break
            }
            Sleep.milliseconds(20)
        }
        ChildProcesses.signalGroup(pid, 9)
        var final = (try? load(id, root: root)) ?? state
        final.status = "stopped"
        final.exitStatus = status
        try? save(final, root: root)
        return status
    }
    static func execMain(_ arguments: [String], root: String) -> Int32 {
        guard arguments.count >= 4, let state = try? load(arguments[0], root: root),
            let processBytes = FileDescriptor.readAll(arguments[1]),
            let process = try? JSONDecoder().decode(Spec.Process.self, from: Data(processBytes)),
            let specBytes = FileDescriptor.readAll("\(state.bundle)/config.json"),
            let spec = try? JSONDecoder().decode(Spec.self, from: Data(specBytes))
        else { return 126 }
        let (path, args) = commandLine(process.args, bundle: state.bundle, spec: spec)
        let env = (process.env ?? environment()) + ["WARDEN_FAKE_RUNSC_CONTAINER=\(root)/\(state.id)"]
        guard let pid = try? Spawn.spawn(path: path, arguments: args, environment: env, stdin: 0, stdout: 1, stderr: 2, newSession: true)
        else { return 127 }
        if !arguments[3].isEmpty { try? Files.write(arguments[3], "\(pid)") }
        try? Files.write(arguments[2], "\(ProcessIdentity.pid)")
        while true {
            if let exit = ChildProcesses.reap(pid) { return Int32(exit.code) }
            if !processAlive(state.sandboxPid) {
                ChildProcesses.signalGroup(pid, 9)
                return Int32(ChildProcesses.waitBlocking(pid).code)
            }
            Sleep.milliseconds(20)
        }
    }

    /// Lives as long as the sandbox (or forever with orphan-gofer).
    static func goferMain(_ arguments: [String], root: String, faults: Faults) -> Int32 {
        guard let id = arguments.first else { return 2 }
        guard awaitCreated(id, root: root) else { return 1 }
        while true {
            if !faults.contains(.orphanGofer) {
                guard let state = try? load(id, root: root), processAlive(state.sandboxPid) else { return 0 }
            }
            Sleep.milliseconds(100)
        }
    }
}
