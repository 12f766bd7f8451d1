import Foundation
import Testing
import WardenTestSupport

/// What a pod's shim costs while it runs, checked without wall-clock bounds (docs/benchmarks.md
/// has the timings, measured beside the runc shim): its thread count does not grow with the
/// containers and execs of the pod, an idle pod's shim does not wake up (no poll loop), and
/// it keeps next to none of its own code resident (settled after its last work).
@Suite(.serialized)
struct FootprintTests {
    /// Threads a shim may have whatever the pod runs: main, the ttrpc loop (listener and every
    /// connection), supervisor, stdio copier, libdispatch's manager, plus Swift's cooperative
    /// pool (one per core); 2 spare. Before the loops, each connection (one per container)
    /// and each stdio stream had threads of its own: 29 for this pod.
    static var threadBound: Int { 7 + ProcessInfo.processInfo.activeProcessorCount }

    @Test(arguments: RuntimeKind.allCases)
    func aPodOfTenContainersWithExecsHasBoundedThreadsAndIdlesWithoutWakeups(_ runtime: RuntimeKind) async throws {
        guard ShimHarness.available(runtime) else { return }
        try await ShimHarness.run(runtime, limit: .seconds(180), "footprint (\(runtime))") { h in
            try await Self.footprint(h)
        }
    }

    static func footprint(_ h: ShimHarness) async throws {
        let image = ShimHarness.image
        // No id is a prefix of another: runsc resolves ids by prefix (issue 16).
        let ids = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].map { "fp-\($0)" }
        for id in ids {
            let type = id == ids[0] ? "sandbox" : "container"
            let run = try await h.ctr(["run", "-d"] + h.runtimeFlags + [
                "--annotation", "io.kubernetes.cri.container-type=\(type)", "--annotation", "io.kubernetes.cri.sandbox-id=\(ids[0])",
                image, id, "sleep", "1000",
            ])
            #expect(run.status == 0, "run -d \(id): \(run.output)")
        }
        for id in ids { try await h.waitForTask(id, status: "RUNNING") }
        let shims = h.shimProcesses()
        #expect(shims.count == 1, "one shim for the pod: \(shims)")
        let shim = try #require(shims.first.flatMap { Int32($0.split(separator: ":")[0]) })

        // An exec that ends in every container, and one that stays in three of them.
        for id in ids {
            let exec = try await h.ctr(["task", "exec", "--exec-id", "once", id, "sh", "-c", "echo in-\(id)"])
            #expect(exec.status == 0 && exec.output.contains("in-\(id)"), "exec in \(id): \(exec.output)")
        }
        for id in ids.prefix(3) {
            let exec = try await h.ctr(["task", "exec", "--detach", "--exec-id", "stays", id, "sleep", "1000"])
            #expect(exec.status == 0, "exec -d in \(id): \(exec.output)")
        }
        let threads = threadNames(shim)
        #expect(threads.count <= threadBound, "\(threads.count) threads for a pod of 10 containers and 13 execs (bound \(threadBound)): \(threads)")

        // Idle: nothing may wake the shim, not once. A poll loop of any period shows up as
        // context switches (a 100 ms stdio poll: 10 per second per stream), and so did
        // libdispatch's pool (a one-second timer for the life of the process), the deadline
        // timers of runsc calls that ended early (Task.sleep is not unregistered when
        // cancelled) and the orphan sweep's back-off: the shim's own executor, cancellable
        // timers and SIGCHLD through a signalfd replaced them. What the last calls set off is
        // let pass first (stdio's close grace is 2 s).
        try await Task.sleep(for: .seconds(3))
        let before = activity(shim)
        try await Task.sleep(for: .seconds(5))
        let after = activity(shim)
        // Per thread: one that ended in between (an idle pool thread retiring) takes its
        // count with it, one that started counts from zero.
        let wakeups = after.byThread.reduce(0) { sum, entry in sum + max(0, entry.value - (before.byThread[entry.key] ?? 0)) }
        let ticks = after.cpuTicks - before.cpuTicks
        let byThread = after.byThread.compactMap { name, count -> String? in
            let delta = count - (before.byThread[name] ?? 0)
            return delta == 0 ? nil : "\(name): \(delta)"
        }.sorted()
        #expect(wakeups == 0, "an idle shim woke \(wakeups) times in 5 s: \(byThread)")
        #expect(ticks <= 1, "an idle shim used \(ticks) clock ticks of CPU in 5 s")
        print("footprint (\(h.runtime)): \(threads.count) threads \(threads), idle 5 s: \(wakeups) wakeups \(byThread), \(ticks) ticks")

        // Settled: after its last burst of work the shim dropped its own code pages (they stay
        // in the page cache, shared with every shim, and come back on the next touch), so an
        // idle shim has next to none of its executable's code resident.
        let code = try #require(residentCode(shim))
        print("footprint (\(h.runtime)): idle shim's own code resident \(code.resident) KiB of \(code.mapped) KiB mapped")
        #expect(code.resident <= Self.settledCodeBound, "an idle shim keeps \(code.resident) KiB of its code resident")

        #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", ids[0]]).status == 0)
        for id in ids { try await h.waitForTask(id, status: "STOPPED") }
        for id in ids.reversed() {
            #expect(try await h.ctr(["task", "rm", id]).status == 0)
            #expect(try await h.ctr(["container", "rm", id]).status == 0)
        }
    }

    /// What an idle, settled shim may keep of its own code resident (KiB): the pages its last
    /// metrics write touched after the drop (384–576 KiB of the test build's 6.5 MiB here).
    /// Without the drop this pod's shim kept about 4.1 MiB.
    static let settledCodeBound = 2048

    /// Resident and mapped KiB of the process's own code: the r-xp mappings of its executable.
    static func residentCode(_ pid: Int32) -> (resident: Int, mapped: Int)? {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
            let smaps = procText("/proc/\(pid)/smaps")
        else { return nil }
        var resident = 0
        var mapped = 0
        var inCode = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let first = fields.first else { continue }
            if !first.hasSuffix(":") {  // a mapping's header: range perms offset dev inode path
                inCode = fields.count >= 6 && fields[1] == "r-xp" && fields[5...].joined(separator: " ") == executable
            } else if inCode, first == "Rss:" || first == "Size:", fields.count >= 2 {
                if first == "Rss:" { resident += Int(fields[1]) ?? 0 } else { mapped += Int(fields[1]) ?? 0 }
            }
        }
        return mapped > 0 ? (resident, mapped) : nil
    }

    /// Names of the process's threads.
    static func threadNames(_ pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { tid in
            procText("/proc/\(pid)/task/\(tid)/comm")?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }.sorted()
    }

    /// Context switches summed over the process's threads, and its CPU time in clock ticks.
    static func activity(_ pid: Int32) -> (switches: Int, cpuTicks: Int, byThread: [String: Int]) {
        var switches = 0
        var byThread: [String: Int] = [:]
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for tid in tasks {
            let status = procText("/proc/\(pid)/task/\(tid)/status") ?? ""
            let name = status.split(separator: "\n").first.map { String($0.dropFirst("Name:".count)).trimmingCharacters(in: .whitespaces) } ?? "?"
            for line in status.split(separator: "\n")
            where line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") {
                let count = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                switches += count
                byThread["\(name)/\(tid)", default: 0] += count
            }
        }
        // /proc/<pid>/stat: fields 14 and 15 (utime, stime), counted after the ")" of comm.
        let stat = procText("/proc/\(pid)/stat") ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 13 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
        return (switches, ticks, byThread)
    }
}
