import Foundation
import Synchronization

/// Runs a helper command (ctr) for the CLI, bounded in time: killed at `within`.
enum Command {
    struct Result {
        let status: Int32
        let output: String
    }

    static func run(_ path: String, _ arguments: [String], within: Duration) -> Result? {
        guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let reader = DispatchQueue(label: "command-output")
        let data = Mutex(Data())
        let group = DispatchGroup()
        group.enter()
        reader.async {
            let read = pipe.fileHandleForReading.readDataToEndOfFile()
            data.withLock { $0 = read }
            group.leave()
        }
        let seconds = Double(within.components.seconds) + Double(within.components.attoseconds) / 1e18
        if group.wait(timeout: .now() + seconds) == .timedOut {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            _ = group.wait(timeout: .now() + 2)
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data.withLock { $0 }, as: UTF8.self))
    }
}
