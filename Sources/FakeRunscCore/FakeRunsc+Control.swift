// The fake sandbox's control server, as runsc 2024's sandbox serves one on the socket its
// state records (runsc/boot/controller.go, in gVisor's urpc: one JSON object per call, one
// per answer): Wait, Signal, Processes and Event, doing what the CLI verbs do. Faults are
// read at each call, so a test can wedge the server of a sandbox that is already running:
// control-hang/-close/-garbage/-wrong, and hang-<verb> for the verb a call stands for.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LinuxSys

extension FakeRunsc {
    enum ControlServer {
        /// Listens on the sandbox's recorded socket (none with no-control) on a thread of the
        /// sandbox process; each connection gets a thread of its own, as urpc's goroutines.
        static func start(_ state: State, root: String) {
            guard let path = state.sandbox?.controlSocketPath,
                let listener = try? UnixSocket.listen(path: path, mode: 0o600, backlog: 64)
            else { return }
            try? DetachedThread.spawn(name: "control") {
                while let connection = try? UnixSocket.accept(listener) {
                    try? DetachedThread.spawn(name: "control-call") {
                        serve(connection, root: root)
                        UnixSocket.close(connection)
                    }
                }
            }
        }

        private struct Head: Decodable { var method: String }
        private struct Call<Argument: Decodable>: Decodable { var arg: Argument }
        struct SignalArgs: Decodable {
            var CID: String
            var Signo: Int32
            var PID: Int32
            var Mode: Int
        }

        /// Calls on one connection, one at a time, until the client hangs up.
        private static func serve(_ connection: Int32, root: String) {
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                while (try? JSONDecoder().decode(Head.self, from: Data(received))) == nil {
                    let count = (try? buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try UnixSocket.read(connection, into: raw) }) ?? 0
                    if count <= 0 { return }
                    received += buffer[0..<count]
                }
                let request = received
                received = []
                guard let answer = answer(request, root: root) else { return }
                do throws(Errno) { try UnixSocket.writeAll(connection, Array(answer.utf8)) } catch { return }
            }
        }

        /// The answer text, nil to close the connection without one.
        private static func answer(_ request: [UInt8], root: String) -> String? {
            guard let method = try? JSONDecoder().decode(Head.self, from: Data(request)).method else { return nil }
            let faults = (try? Faults(root: root))
            let verb = ["containerManager.Wait": "wait", "containerManager.Signal": "kill", "containerManager.Processes": "ps",
                        "containerManager.Event": "events"][method]
            if faults?.contains(.controlHang) == true || verb.map({ faults?.hangs($0) == true }) == true {
                while true { Sleep.seconds(3600) }
            }
            if faults?.contains(.controlClose) == true { return nil }
            if faults?.contains(.controlGarbage) == true { return "\u{1}\u{2}not urpc" }
            if faults?.contains(.controlWrong) == true { return #"{"success":true,"err":"","result":"wrong"}"# }
            recordIfWatched(root: root, "control \(method)")
            do {
                switch method {
                case "containerManager.Wait":
                    let id = try JSONDecoder().decode(Call<String>.self, from: Data(request)).arg
                    return success(String(waitStatus(try waitForExit(id, root: root))))
                case "containerManager.Signal":
                    let args = try JSONDecoder().decode(Call<SignalArgs>.self, from: Data(request)).arg
                    let state = try load(args.CID, root: root)
                    try deliver(args.Signo, to: state, all: args.Mode == 1, pid: args.PID == 0 ? nil : args.PID, root: root,
                        faults: faults ?? (try Faults(root: root)))
                    return success("null")
                case "containerManager.Processes":
                    let state = try load(try JSONDecoder().decode(Call<String>.self, from: Data(request)).arg, root: root)
                    return success(state.containerPid.map { #"[{"pid":\#($0),"cmd":"fake"}]"# } ?? "null")
                case "containerManager.Event":
                    let state = try load(try JSONDecoder().decode(Call<String>.self, from: Data(request)).arg, root: root)
                    return success(#"{"event":{"type":"stats","id":"\#(state.id)","data":\#(statsJSON(state))},"containerUsage":{}}"#)
                default:
                    return failure("unknown method: \(method)")
                }
            } catch let failed as Failure {
                return failure(failed.message)
            } catch {
                return failure("\(error)")
            }
        }

        private static func success(_ result: String) -> String { #"{"success":true,"err":"","result":\#(result)}"# }

        private static func failure(_ message: String) -> String {
            let quoted = (try? JSONEncoder().encode(message)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
            return #"{"success":false,"err":\#(quoted),"result":null}"#
        }

        /// As `runsc wait` waits: until the container stopped or its sandbox is gone.
        private static func waitForExit(_ id: String, root: String) throws -> Int32 {
            while true {
                let state = try load(id, root: root)
                if state.status == "stopped" || !processAlive(state.sandboxPid) { return state.exitStatus ?? 128 + 9 }
                Sleep.milliseconds(5)
            }
        }

        /// The Linux wait status urpc carries for an exit status as the CLI prints it.
        private static func waitStatus(_ exitStatus: Int32) -> UInt32 {
            exitStatus > 128 ? UInt32(exitStatus - 128) : UInt32(exitStatus) << 8
        }
    }

    /// One stats sample: the container process's resident memory (so two containers of a pod
    /// differ as their processes do) and a fixed CPU time.
    static func statsJSON(_ state: State) -> String {
        let rss = state.containerPid.flatMap(residentBytes) ?? 4096
        return #"{"cpu":{"usage":{"total":1000000,"kernel":0,"user":1000000}},"memory":{"usage":{"usage":\#(rss),"max":\#(rss)}},"pids":{"current":1}}"#
    }

    /// VmRSS of `pid`, with its descendants' (a shell's child does the allocating).
    static func residentBytes(_ pid: Int32) -> UInt64? {
        let pids = [pid] + ProcessTable.descendants(of: pid)
        let total = pids.compactMap { pid -> UInt64? in
            guard let text = FileDescriptor.readAll("/proc/\(pid)/status").map({ String(decoding: $0, as: UTF8.self) }),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = UInt64(line.split(separator: " ").dropFirst().first ?? "")
            else { return nil }
            return kib * 1024
        }.reduce(0, +)
        return total == 0 ? nil : total
    }
}
