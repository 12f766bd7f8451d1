import Foundation
import LinuxSys

/// A finished command: its exit status and combined stdout and stderr.
public struct CommandResult: Sendable {
    public var status: Int32
    public var output: String
}

/// Runs a command to its end, bounded by `timeout` (then it is SIGKILLed by its pid and the
/// test fails with TestTimedOut).
public func runCommand(
    _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
    timeout: Duration = .seconds(30)
) async throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let input = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try? input.fileHandleForWriting.close()
    }
    // Read on a thread of its own: a blocking read on the cooperative pool (two threads on a
    // 2-core machine) would stall every other test's timers while the command runs.
    let handle = output.fileHandleForReading
    let reader = Task<Data, Never> {
        await withCheckedContinuation { continuation in
            do {
                try DetachedThread.spawn(name: "command-out") { continuation.resume(returning: handle.readDataToEndOfFile()) }
            } catch {
                continuation.resume(returning: Data("(could not start the output reader: \(error))".utf8))
            }
        }
    }
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestTimedOut(limit: timeout, what: "\(executable) \(arguments.joined(separator: " "))")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    let data = await reader.value
    return CommandResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// A network namespace of the test's own (`ip netns add wdt-…`), never the host's, with helpers
/// to build veths inside it. `remove()` deletes it and everything in it.
public struct TestNetworkNamespace: Sendable {
    public let name: String
    public var path: String { "/var/run/netns/\(name)" }

    public static func create(prefix: String = "wdt") async throws -> TestNetworkNamespace {
        let namespace = TestNetworkNamespace(name: "\(prefix)-\(UInt32.random(in: 0...UInt32.max))")
        try await namespace.ip(["netns", "add", namespace.name], inside: false)
        return namespace
    }

    /// `ip -n <name> args…`; fails the test with ip's output if it fails.
    @discardableResult
    public func ip(_ arguments: [String], inside: Bool = true) async throws -> String {
        let result = try await runCommand("/usr/sbin/ip", (inside ? ["-n", name] : []) + arguments, timeout: .seconds(10))
        guard result.status == 0 else {
            throw CommandFailed(description: "ip \(arguments.joined(separator: " ")): \(result.output)")
        }
        return result.output
    }

    public func remove() async {
        _ = try? await runCommand("/usr/sbin/ip", ["netns", "delete", name], timeout: .seconds(10))
    }
}

public struct CommandFailed: Error, CustomStringConvertible {
    public var description: String
}

/// Runs `body` with a fresh test network namespace, removed afterwards whatever happens.
public func withTestNetworkNamespace<T>(_ body: (TestNetworkNamespace) async throws -> T) async throws -> T {
    let namespace = try await TestNetworkNamespace.create()
    do {
        let result = try await body(namespace)
        await namespace.remove()
        return result
    } catch {
        await namespace.remove()
        throw error
    }
}
