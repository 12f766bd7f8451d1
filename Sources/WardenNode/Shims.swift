import Foundation
import Config
import LinuxSys
import ShimLayout

/// The Warden shims serving on this node, as `warden status` shows them: found in /proc
/// (the server, not `start`/`delete`, not its spawn helper), described from their command
/// line and environment, and their pods' state read from their metrics files.
public struct ShimStatus: Sendable, Equatable, Encodable {
    public var pid: Int32
    public var namespace: String
    /// The pod (CRI sandbox id, else its first container's id).
    public var pod: String
    public var socket: String
    public var ageSeconds: Int
    /// RSS and PSS of the shim and its spawn helper together, KiB.
    public var rssKiB: Int
    public var pssKiB: Int
    public var helperPid: Int32?
    /// container → state, from the shim's metrics file.
    public var containers: [String: String]
    public var tasksByState: [String: Int]
    public var lastTermination: Termination?
    /// The last crash of the pod's sandbox or gofer (SandboxCrash in the shim).
    public var lastCrash: CrashRecord?
    public var metricsFile: String?

    public struct Termination: Sendable, Equatable, Encodable {
        public var sandbox: String
        public var reason: String
        public var outcome: String
        public var seconds: Double
    }
}

public enum Shims {
    static let binary = "containerd-shim-warden-v2"
    static let helperName = "warden-spawner"

    /// Whether `entry` is a serving Warden shim (or its helper, `helper: true`).
    static func isServer(_ entry: ProcessEntry, helper: Bool = false) -> Bool {
        guard let first = entry.arguments.first, first.hasSuffix(binary), entry.state != "Z" else { return false }
        guard !entry.arguments.contains("start"), !entry.arguments.contains("delete") else { return false }
        return (entry.name == helperName) == helper
    }

    /// Every serving Warden shim, oldest first.
    public static func status(processes: [ProcessEntry] = ProcessTable.snapshot()) -> [ShimStatus] {
        let ticksPerSecond = Double(ClockTicks.perSecond)
        let uptime = ClockTicks.uptimeSeconds
        return processes.filter { isServer($0) }.sorted { $0.startTime < $1.startTime }.map { entry in
            let environment = ProcessTable.environment(entry.pid)
            func variable(_ name: String) -> String? {
                environment.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
            }
            func flag(_ name: String) -> String? {
                guard let index = entry.arguments.firstIndex(of: name), index + 1 < entry.arguments.count else { return nil }
                return entry.arguments[index + 1]
            }
            let namespace = flag("-namespace") ?? ""
            let pod = variable(ShimEnvironment.pod) ?? flag("-id") ?? ""
            let helper = processes.first { $0.parent == entry.pid && isServer($0, helper: true) }
            let own = ProcessTable.memory(entry.pid) ?? (0, 0)
            let helperMemory = helper.flatMap { ProcessTable.memory($0.pid) } ?? (0, 0)
            var status = ShimStatus(
                pid: entry.pid, namespace: namespace, pod: pod, socket: variable(ShimEnvironment.socketPath) ?? "",
                ageSeconds: max(0, Int(uptime - Double(entry.startTime) / ticksPerSecond)),
                rssKiB: own.rss + helperMemory.rss, pssKiB: own.pss + helperMemory.pss, helperPid: helper?.pid,
                containers: [:], tasksByState: [:], lastTermination: nil, lastCrash: nil, metricsFile: nil)
            // Its metrics file: where its config says (the shim's config path is in its environment).
            let configPath = variable(ShimEnvironment.configPath).flatMap { $0.isEmpty ? nil : $0 } ?? WardenConfig.defaultPath
            let config = (try? WardenConfig.load(path: configPath) { FileDescriptor.readAll($0) }) ?? WardenConfig()
            if !config.metricsDirectory.isEmpty {
                let file = config.metricsDirectory + "/" + ShimFiles.metrics(namespace: namespace, pod: pod)
                if let text = FileDescriptor.readText(file) {
                    status.metricsFile = file
                    status.apply(Exposition.samples(text))
                }
            }
            return status
        }
    }
}

extension ShimStatus {
    mutating func apply(_ samples: [Exposition.Sample]) {
        for sample in samples {
            switch sample.name {
            case "warden_container_state" where sample.value == 1:
                if let container = sample.labels["container"], let state = sample.labels["state"] { containers[container] = state }
            case "warden_tasks":
                if let state = sample.labels["state"] { tasksByState[state] = Int(sample.value) }
            case "warden_last_termination_seconds":
                lastTermination = Termination(
                    sandbox: sample.labels["sandbox"] ?? "", reason: sample.labels["reason"] ?? "",
                    outcome: sample.labels["outcome"] ?? "", seconds: sample.value)
            case "warden_last_sandbox_crash_timestamp_seconds" where sample.value > (lastCrash?.at ?? 0):
                let labels = sample.labels
                lastCrash = CrashRecord(
                    sandbox: labels["sandbox"] ?? "", process: labels["process"] ?? "", pid: Int32(labels["pid"] ?? "") ?? 0,
                    status: labels["status"] ?? "", reason: labels["reason"] ?? "", detail: labels["detail"] ?? "",
                    at: sample.value)
            default: break
            }
        }
    }
}

/// The crash records shims left in the metrics directory (`ShimFiles.crashRecord`).
public enum Crashes {
    /// Every record in `directory`, newest first; unreadable ones skipped.
    public static func records(in directory: String) -> [CrashRecord] {
        guard !directory.isEmpty else { return [] }
        return Directories.entries(directory).filter { $0.hasSuffix(ShimFiles.crashRecordExtension) }.compactMap { name in
            FileDescriptor.readAll("\(directory)/\(name)", limit: 64 << 10).flatMap {
                try? JSONDecoder().decode(CrashRecord.self, from: Data($0))
            }
        }.sorted { $0.at > $1.at }
    }

    /// One line: when, which process, how, why.
    public static func describe(_ crash: CrashRecord) -> String {
        let formatter = ISO8601DateFormatter()
        let when = formatter.string(from: Date(timeIntervalSince1970: crash.at))
        return "\(when) sandbox \(crash.sandbox): \(crash.process) pid \(crash.pid) \(crash.status): \(crash.detail) (reason \(crash.reason))"
    }
}
