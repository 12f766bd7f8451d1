import Config
import LinuxSys
import ShimLayout

/// `start`: find or spawn the pod's shim server and print its address. Prints nothing else,
/// and nothing on stderr unless it fails (containerd reads the combined output as the address).
enum ShimStart {
    static func run(_ flags: ShimFlags) -> Int32 {
        switch start(flags, stdin: FileDescriptor.isTerminal(0) ? [] : FileDescriptor.readToEnd(0, limit: 10 << 20)) {
        case .success(let answer):
            Console.outputBytes(answer)
            return 0
        case .failure(let error):
            Console.error("containerd-shim-warden-v2 start: \(error)")
            return 1
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The bytes to print: the address as text, or a BootstrapResult when containerd (2.3+)
    /// sent a BootstrapParams.
    static func start(_ commandLine: ShimFlags, stdin: [UInt8]) -> Result<[UInt8], Failure> {
        let request: StartRequest
        do throws(StartRequest.Refusal) {
            request = try StartRequest.parse(stdin, id: commandLine.id, namespace: commandLine.namespace)
        } catch {
            return .failure(Failure(description: error.description))
        }
        // containerd 2.3 still passes the legacy flags; a later one may pass only the params.
        var flags = commandLine
        if flags.id.isEmpty { flags.id = request.id ?? "" }
        if flags.namespace.isEmpty { flags.namespace = request.namespace ?? "" }
        if flags.address.isEmpty { flags.address = request.grpcAddress ?? "" }
        if flags.publishBinary.isEmpty { flags.publishBinary = request.publishBinary ?? "" }
        if request.debug { flags.debug = true }
        guard !flags.id.isEmpty, !flags.namespace.isEmpty else {
            return .failure(Failure(description: "start needs -id and -namespace (or a BootstrapParams on stdin)"))
        }
        return start(flags, request: request).map { request.answer(address: $0) }
    }

    private static func start(_ flags: ShimFlags, request input: StartRequest) -> Result<String, Failure> {
        let configPath: String
        do throws(ConfigError) {
            // Checked here so a bad config fails `ctr run`/RunPodSandbox with its message.
            // No ConfigPath from containerd: the environment's (a runtime_type wrapper that sets
            // WARDEN_CONFIG_PATH: containerd 2.0-2.3.0 cannot give a shim-sandboxed handler
            // options at all, fixed by containerd #13360 in 2.3.1), else the default file.
            (_, configPath) = try ShimCommand.loadConfig(
                path: input.configPath ?? ProcessEnvironment.value(ShimCommand.configPathVariable))
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
        guard let bundle = flags.bundle.isEmpty ? ProcessEnvironment.workingDirectory : flags.bundle else {
            return .failure(Failure(description: "cannot determine the bundle directory"))
        }
        // containerd 2.x's shim sandboxer starts the shim for a pod with no spec in the bundle
        // (CreateSandbox brings the pod's config): the pod is its own group.
        let group: String
        if FileDescriptor.exists(bundle + "/config.json") {
            do throws(ShimError) {
                group = try OCISpec.load(bundle: bundle).groupID(containerID: flags.id)
            } catch {
                return .failure(Failure(description: error.message))
            }
        } else {
            group = flags.id
        }
        let directory = input.socketDirectory ?? socketDirectory(bundle: bundle)
        let path = "\(directory)/\(SHA256.hex("\(flags.address)/\(flags.namespace)/\(group)"))"
        let address = "unix://\(path)"
        do throws(Errno) {
            try Directories.make(directory)
            try Files.write(bundle + "/" + ShimCommand.bundleConfigFile, configPath)
            let listener: Int32
            do throws(Errno) {
                listener = try UnixSocket.listen(path: path, replaceExisting: false)
            } catch where error.code == Errno.EADDRINUSE {
                if let existing = try? UnixSocket.connect(path: path) {
                    // The pod's shim is already serving: this container joins it.
                    UnixSocket.close(existing)
                    try Files.write(bundle + "/address", address)
                    return .success(address)
                }
                listener = try UnixSocket.listen(path: path, replaceExisting: true)
            }
            defer { UnixSocket.close(listener) }
            guard let executable = ProcessIdentity.executablePath else {
                UnixSocket.remove(path: path)
                return .failure(Failure(description: "cannot find this executable (/proc/self/exe)"))
            }
            let null = try FileDescriptor.openNull()
            defer { FileDescriptor.close(null) }
            // A crash report (Swift runtime message) has nowhere to go but stderr; operators can
            // point it at a file. Never containerd's pipe.
            var serverStderr = null
            if let path = ProcessEnvironment.value("WARDEN_SHIM_STDERR"), !path.isEmpty,
                let file = try? FileDescriptor.openForAppend(path)
            {
                serverStderr = file
            }
            defer { if serverStderr != null { FileDescriptor.close(serverStderr) } }
            let ownVariables = [ShimCommand.configPathVariable, ShimCommand.socketPathVariable, ShimCommand.podVariable]
            var environment = ProcessEnvironment.all.filter { entry in !ownVariables.contains { entry.hasPrefix($0 + "=") } }
            environment += [
                "\(ShimCommand.configPathVariable)=\(configPath)", "\(ShimCommand.socketPathVariable)=\(path)",
                "\(ShimCommand.podVariable)=\(group)",
            ]
            // Events go to containerd's ttrpc address: the environment's, else the params'.
            if ProcessEnvironment.value("TTRPC_ADDRESS") == nil, let ttrpcAddress = input.ttrpcAddress {
                environment.append("TTRPC_ADDRESS=\(ttrpcAddress)")
            }
            // The server gets /dev/null, never containerd's pipes (which would hold `start`'s
            // output open), its own session, and the listener as fd 3.
            let pid = try Spawn.spawn(
                path: executable, arguments: flags.serverArguments, environment: environment,
                descriptors: [null, null, serverStderr, listener], newSession: true)
            try Files.write(bundle + "/address", address)
            try Files.write(bundle + "/shim.pid", String(pid))
            return .success(address)
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }

    /// containerd keeps shim sockets in `<its state dir>/../s` (`/run/containerd/s` for the
    /// default `/run/containerd` state). The bundle is `<state>/io.containerd.runtime.v2.task/<ns>/<id>`
    /// (a task's) or `<state>/io.containerd.sandbox.controller.v1.shim/<ns>/<id>` (a pod's under
    /// the shim sandboxer, whose containers must find the same socket), so a private
    /// containerd's shims stay under its own state directory.
    static func socketDirectory(bundle: String) -> String {
        let components = bundle.split(separator: "/", omittingEmptySubsequences: true)
        if components.count >= 3, ContainerdBundles.owners.contains(String(components[components.count - 3])) {
            return "/" + components.dropLast(3).joined(separator: "/") + "/s"
        }
        return "/run/containerd/s"
    }
}
