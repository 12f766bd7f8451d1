import Foundation
import LinuxSys
import Synchronization

/// A helper process a test starts (a Go peer, containerd, ctr), with its combined output
/// captured line by line. Tests stop it by its PID in `stop()`; nothing is killed by name.
public final class ChildProcess: Sendable {
    public let pid: Int32
    public let command: String
    private let process: Process
    private let output = OutputBuffer()

    private struct OutputState {
        var text = ""
        var closed = false
    }

    private final class OutputBuffer: Sendable {
        let state = Mutex(OutputState())
        func withLock<T: Sendable>(_ body: (inout sending OutputState) -> sending T) -> T { state.withLock(body) }
    }

    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        self.pid = process.processIdentifier
        self.command = ([executable] + arguments).joined(separator: " ")
        let readFD = pipe.fileHandleForReading.fileDescriptor
        let output = self.output
        try DetachedThread.spawn(name: "child-out") {
            var buffer = [UInt8](repeating: 0, count: 16384)
            while true {
                let count = (try? buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(readFD, into: raw) }) ?? 0
                if count <= 0 { break }
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                output.withLock { $0.text += text }
            }
            output.withLock { $0.closed = true }
            _ = pipe
        }
    }

    /// Everything the process printed so far.
    public var outputText: String { output.withLock { $0.text } }

    public var isRunning: Bool { process.isRunning }

    /// Waits until the output contains `text`.
    public func waitForOutput(containing text: String, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !outputText.contains(text) {
            if ContinuousClock.now > deadline || !process.isRunning && output.withLock({ $0.closed }) {
                throw TestTimedOut(limit: timeout, what: "output \"\(text)\" from \(command); got:\n\(outputText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for the process to exit on its own; returns its exit status.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                throw TestTimedOut(limit: timeout, what: "exit of \(command); output:\n\(outputText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Let the output thread drain what the process wrote last.
        for _ in 0..<50 where !output.withLock({ $0.closed }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        return process.terminationStatus
    }

    /// SIGTERM by PID, then SIGKILL after `grace`; waits until the process is gone.
    public func stop(grace: Duration = .seconds(5)) async {
        if isAlive {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + grace
            while isAlive && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            if isAlive {
                kill(pid, SIGKILL)
                while isAlive { try? await Task.sleep(for: .milliseconds(10)) }
            }
        }
        // Foundation may say "not running" before it has reaped the child: until the zombie
        // is gone the PID still exists, and a leak audit right after stop() would count it.
        let reapDeadline = ContinuousClock.now + .seconds(5)
        while processExists(pid) && ContinuousClock.now < reapDeadline {
            if isZombie(pid) {
                var status: Int32 = 0
                _ = waitpid(pid, &status, WNOHANG)
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Running, and not merely an unreaped zombie (Foundation does not always notice the exit
    /// of a child while other children come and go; a zombie is reaped here by its PID).
    private var isAlive: Bool {
        guard process.isRunning else { return false }
        if isZombie(pid) {
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
            return false
        }
        return processExists(pid)
    }
}

/// Whether a process with this PID exists (leak audits).
public func processExists(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0 || errno == EPERM
}
