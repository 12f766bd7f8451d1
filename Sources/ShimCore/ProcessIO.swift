import Deadlines
import LinuxSys
import Runsc
import Supervisor
import Synchronization

/// The stdio of one container process, as containerd describes it in Create/Exec:
/// fifo paths (copied through pipes by pumps), `file://` (the file is handed to the
/// process), `binary://` (a logger process reads the pipes), or a terminal (runsc sends the
/// pty master to a console socket; the pumps copy between it and the fifos).
final class ProcessIO: Sendable {
    /// What runsc hands to the process (nil with a terminal).
    let processStdio: ContainerStdio?
    /// The console socket runsc connects to when the process has a terminal.
    let consoleSocket: ConsoleSocket?
    var consoleSocketPath: String? { consoleSocket?.path }

    private let state: Mutex<State>
    private struct State {
        var processSide: [Int32] = []
        var consoleListener: Int32?
        var console: Int32?
        var stdinPump: Pump?
        var outputPumps: [Pump] = []
        var stdinFifo: String
        var stdoutFifo: String
        var logger: Child?
        /// A size set before the terminal exists (ctr resizes an exec before starting it).
        var pendingSize: (width: UInt32, height: UInt32)?
    }
    private let supervisor: any ProcessSupervision
    private let copier: StdioCopier

    private init(
        processStdio: ContainerStdio?, consoleSocket: ConsoleSocket?, state: State, supervisor: any ProcessSupervision,
        copier: StdioCopier
    ) {
        self.processStdio = processStdio
        self.consoleSocket = consoleSocket
        self.state = Mutex(state)
        self.supervisor = supervisor
        self.copier = copier
    }

    struct Paths: Sendable {
        var stdin: String
        var stdout: String
        var stderr: String
        var terminal: Bool
    }

    /// Sets up the descriptors before runsc create/exec. `name` labels files and errors.
    static func open(
        _ paths: Paths, name: String, scratchDirectory: String, containerID: String, namespace: String,
        supervisor: any ProcessSupervision, copier: StdioCopier
    ) throws(ShimError) -> ProcessIO {
        let opened = OpenedDescriptors()
        let track = opened.track
        do throws(Errno) {
            if paths.terminal {
                let socket = try ConsoleSocket.place(
                    name: name, scratchDirectory: scratchDirectory, temporaryBase: ConsoleSocket.temporaryBase())
                let listener: Int32
                do throws(Errno) {
                    listener = try UnixSocket.listen(path: socket.path, mode: 0o600, backlog: 1)
                } catch {
                    socket.remove()
                    throw error
                }
                return ProcessIO(
                    processStdio: nil, consoleSocket: socket,
                    state: State(consoleListener: listener, stdinFifo: paths.stdin, stdoutFifo: paths.stdout),
                    supervisor: supervisor, copier: copier)
            }
            var state = State(stdinFifo: paths.stdin, stdoutFifo: paths.stdout)
            var processSide: [Int32] = []
            // stdin: a pipe fed from the fifo, or /dev/null.
            let stdin: Int32
            if paths.stdin.isEmpty {
                stdin = track(try FileDescriptor.openNull())
            } else {
                let pipe = try FileDescriptor.pipe()
                _ = track(pipe.read)
                _ = track(pipe.write)
                let fifo = track(try FileDescriptor.openFifoReaderNonBlocking(paths.stdin))
                opened.forget(fifo, pipe.write)
                state.stdinPump = try copier.copy(from: fifo, to: pipe.write)
                stdin = pipe.read
            }
            processSide.append(stdin)
            let (stdout, stderr) = try openOutputs(
                paths, name: name, containerID: containerID, namespace: namespace, supervisor: supervisor,
                copier: copier, state: &state, opened: opened)
            processSide += [stdout, stderr]
            state.processSide = processSide
            return ProcessIO(
                processStdio: ContainerStdio(stdin: stdin, stdout: stdout, stderr: stderr), consoleSocket: nil,
                state: state, supervisor: supervisor, copier: copier)
        } catch {
            opened.closeAll()
            throw ShimError(.invalidArgument, "stdio of \(name): \(error)")
        }
    }

    private static func openOutputs(
        _ paths: Paths, name: String, containerID: String, namespace: String, supervisor: any ProcessSupervision,
        copier: StdioCopier, state: inout State, opened: OpenedDescriptors
    ) throws(Errno) -> (Int32, Int32) {
        let track = opened.track
        let uri = paths.stdout
        if uri.hasPrefix("file://") {
            let file = track(try FileDescriptor.openForAppend(String(uri.dropFirst("file://".count))))
            return (file, file)
        }
        if uri.hasPrefix("binary://") {
            let out = try FileDescriptor.pipe()
            let err = try FileDescriptor.pipe()
            let ready = try FileDescriptor.pipe()
            [out.read, out.write, err.read, err.write, ready.read, ready.write].forEach { _ = track($0) }
            let (binary, arguments) = BinaryLoggerURI.parse(uri)
            let null = track(try FileDescriptor.openNull())
            // containerd's binary logger protocol: fd 3 stdout, fd 4 stderr, fd 5 "ready".
            let logger = try supervisor.spawn(
                path: binary, arguments: arguments,
                environment: ["CONTAINER_ID=\(containerID)", "CONTAINER_NAMESPACE=\(namespace)", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                descriptors: [null, null, null, out.read, err.read, ready.write], newSession: true)
            state.logger = logger
            for fd in [out.read, err.read, ready.write, null] {
                FileDescriptor.close(fd)
                opened.forget(fd)
            }
            // Ready when the logger closes fd 5 (or exits); bounded so a broken logger fails Create.
            let readyEvents = Poll.wait(ready.read, events: Poll.readable, timeoutMilliseconds: 10_000)
            FileDescriptor.close(ready.read)
            opened.forget(ready.read)
            if readyEvents == 0 {
                _ = try? supervisor.signal(logger, 9)
                throw Errno(code: Errno.ETIMEDOUT, call: "binary logger \(binary) did not signal ready within 10s")
            }
            return (out.write, err.write)
        }
        func fifoOutput(_ path: String) throws(Errno) -> Int32 {
            if path.isEmpty { return track(try FileDescriptor.openNull()) }
            let pipe = try FileDescriptor.pipe()
            _ = track(pipe.read)
            _ = track(pipe.write)
            let fifo = track(try FileDescriptor.openFifoReadWriteNonBlocking(path))
            opened.forget(fifo, pipe.read)  // the pump owns them, even if it cannot start
            state.outputPumps.append(try copier.copy(from: pipe.read, to: fifo))
            return pipe.write
        }
        let stdout = try fifoOutput(paths.stdout)
        let stderr = try fifoOutput(paths.stderr)
        return (stdout, stderr)
    }

    /// After runsc took the process's descriptors: the shim's copies are closed, so the
    /// pumps see EOF when the process (and the sandbox) let go of theirs.
    func handedOver() {
        let fds = state.withLock { state in
            defer { state.processSide = [] }
            return state.processSide
        }
        Set(fds).forEach(FileDescriptor.close)
    }

    /// With a terminal: receives the pty master runsc sent to the console socket and starts
    /// copying between it and the fifos.
    func attachConsole(timeout: Duration) throws(ShimError) {
        guard let listener = state.withLock({ $0.consoleListener }) else { return }
        let milliseconds = Int32(timeout.components.seconds * 1000)
        guard Poll.wait(listener, events: Poll.readable, timeoutMilliseconds: milliseconds) != 0 else {
            throw ShimError(.deadlineExceeded, "runsc did not send the terminal to the console socket within \(timeout)")
        }
        do throws(Errno) {
            let connection = try UnixSocket.accept(listener)
            defer { UnixSocket.close(connection) }
            let master = try UnixSocket.receiveDescriptor(connection)
            try FileDescriptor.setNonBlocking(master)
            let (stdinFifo, stdoutFifo) = state.withLock { ($0.stdinFifo, $0.stdoutFifo) }
            var pumps: [Pump] = []
            var stdinPump: Pump?
            if !stdoutFifo.isEmpty {
                let fifo = try FileDescriptor.openFifoReadWriteNonBlocking(stdoutFifo)
                pumps.append(try copier.copy(from: try FileDescriptor.duplicate(master), to: fifo))
            }
            if !stdinFifo.isEmpty {
                let fifo = try FileDescriptor.openFifoReaderNonBlocking(stdinFifo)
                stdinPump = try copier.copy(from: fifo, to: try FileDescriptor.duplicate(master))
            }
            let pendingSize = state.withLock { state in
                state.console = master
                state.outputPumps += pumps
                state.stdinPump = stdinPump
                return state.pendingSize
            }
            if let pendingSize {
                try? Terminal.setWindowSize(
                    master, width: UInt16(clamping: pendingSize.width), height: UInt16(clamping: pendingSize.height))
            }
        } catch {
            throw ShimError(.internal, "terminal: \(error)")
        }
        closeConsoleListener()
    }

    func closeConsoleListener() {
        let listener = state.withLock { state in
            defer { state.consoleListener = nil }
            return state.consoleListener
        }
        if let listener { UnixSocket.close(listener) }
        consoleSocket?.remove()
    }

    func resize(width: UInt32, height: UInt32) throws(ShimError) {
        let (console, hasTerminal) = state.withLock { state in
            if state.console == nil && consoleSocketPath != nil { state.pendingSize = (width, height) }
            return (state.console, consoleSocketPath != nil)
        }
        guard hasTerminal else { throw ShimError(.failedPrecondition, "the process has no terminal") }
        guard let console else { return }  // applied when the terminal arrives
        do throws(Errno) {
            try Terminal.setWindowSize(console, width: UInt16(clamping: width), height: UInt16(clamping: height))
        } catch {
            throw ShimError(.internal, "resize: \(error)")
        }
    }

    /// CloseIO: the process sees EOF on stdin once what was already written is delivered.
    func closeStdin() {
        state.withLock { $0.stdinPump }?.drainThenStop()
    }

    /// Lets output still in flight reach containerd (up to `grace`), then closes everything:
    /// pumps, the terminal, the logger (which exits at EOF; killed if it does not).
    func close(grace: Duration) async {
        let (pumps, stdinPump, console, logger, processSide) = state.withLock { state in
            defer {
                state.console = nil
                state.processSide = []
                state.logger = nil
            }
            return (state.outputPumps, state.stdinPump, state.console, state.logger, state.processSide)
        }
        Set(processSide).forEach(FileDescriptor.close)
        closeConsoleListener()
        stdinPump?.stop()
        // One grace for all of it: each stream given the whole grace would make Delete's
        // stdio step take twice (or, with a logger, three times) as long as its bound.
        let clock = ContinuousClock()
        let graceEnds = clock.now + grace
        func remaining() -> Duration { max(.zero, graceEnds - clock.now) }
        for pump in pumps { await pump.finish(within: remaining()) }
        await stdinPump?.waitFinished()
        if let console { FileDescriptor.close(console) }
        if let logger {
            let supervisor = self.supervisor
            let exited = await waitAtMost(remaining()) { await supervisor.wait(logger) }
            if exited == nil {
                _ = try? supervisor.signal(logger, 9)
                _ = await supervisor.wait(logger)
            }
            supervisor.release(logger)
        }
    }
}

/// Descriptors opened while setting up stdio, closed together if setup fails.
private final class OpenedDescriptors {
    private var descriptors: [Int32] = []

    func track(_ fd: Int32) -> Int32 {
        descriptors.append(fd)
        return fd
    }

    /// Ownership moved elsewhere (to a pump): no longer closed on failure.
    func forget(_ fds: Int32...) {
        descriptors.removeAll { fds.contains($0) }
    }

    func closeAll() {
        descriptors.forEach(FileDescriptor.close)
        descriptors = []
    }
}

/// `binary:///path/to/logger?key=value&flag`: the binary and its arguments, as containerd
/// builds them (each query pair becomes `key value`, a bare key stays alone).
enum BinaryLoggerURI {
    static func parse(_ uri: String) -> (binary: String, arguments: [String]) {
        let rest = uri.dropFirst("binary://".count)
        let parts = rest.split(separator: "?", maxSplits: 1)
        let binary = String(parts.first ?? "")
        var arguments: [String] = []
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                arguments.append(percentDecoded(String(kv[0])))
                if kv.count > 1 { arguments.append(percentDecoded(String(kv[1]))) }
            }
        }
        return (binary, arguments)
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
