import Glibc
import LinuxSys


// Runs Swift concurrency on the shim's executor (GlobalExecutor) in a process of its own and
// prints what the executor tests check: which threads exist, how many times each woke while
// idle, and the results of sleeps, cancellations and blocked workers.
//   executor-probe [sleep|cancel|forever|blocked|idle <seconds>]

func threadNames() -> [String] {
    Directories.entries("/proc/self/task").compactMap { tid in
        FileDescriptor.readText("/proc/self/task/\(tid)/comm").map { String($0.filter { $0 != "\n" }) }
    }.sorted()
}

func switches() -> [String: Int] {
    var result: [String: Int] = [:]
    for tid in Directories.entries("/proc/self/task") {
        let name = FileDescriptor.readText("/proc/self/task/\(tid)/comm").map { String($0.filter { $0 != "\n" }) } ?? "?"
        let status = FileDescriptor.readText("/proc/self/task/\(tid)/status") ?? ""
        let count = status.split(separator: "\n").filter { $0.hasPrefix("voluntary_ctxt") || $0.hasPrefix("nonvoluntary_ctxt") }
            .compactMap { Int($0.split(separator: "\t").last ?? "") }.reduce(0, +)
        result["\(name)/\(tid)"] = count
    }
    return result
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

let arguments = CommandLine.arguments.dropFirst()
try GlobalExecutor.install(base: 2, max: 8)
let mode = arguments.first ?? "sleep"

Task.detached {
    switch mode {
    case "sleep":
        let clock = ContinuousClock()
        let start = clock.now
        try? await Timers.sleep(for: .milliseconds(100))
        let slept = clock.now - start
        try? await Timers.sleep(for: .milliseconds(50))
        print("slept \(milliseconds(slept)) ms")
    case "cancel":
        let sleeper = Task { try await Timers.sleep(for: .seconds(30)) }
        sleeper.cancel()
        let result = await sleeper.result
        print("cancelled \((try? result.get()) == nil)")
    case "forever":
        // The longest sleep there is must not come round at once (due = now + delay overflowed).
        let sleeper = Task { try await Timers.sleep(for: .seconds(Int64.max)) }
        try? await Timers.sleep(for: .milliseconds(200))
        sleeper.cancel()
        let result = await sleeper.result
        print("forever \((try? result.get()) == nil ? "was still asleep" : "woke up early")")
    case "blocked":
        // Every base worker blocked in a poll: a further job still runs, on an added worker.
        let pipe = try FileDescriptor.pipe()
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<2 { Task { _ = Poll.wait(pipe.read, events: Poll.readable, timeoutMilliseconds: 3000) } }
        try? await Timers.sleep(for: .milliseconds(20))
        await Task.detached { }.value
        print("ran behind blocked workers after \(milliseconds(clock.now - start)) ms")
    default:
        // idle: a sleep and a cancelled sleep first, so that timers have been used.
        try? await Timers.sleep(for: .milliseconds(10))
        let sleeper = Task { try await Timers.sleep(for: .seconds(1)) }
        sleeper.cancel()
        _ = await sleeper.result
    }
    print("threads \(threadNames())")
    if mode == "idle", let seconds = arguments.dropFirst().first.flatMap({ Int($0) }) {
        // This thread blocks in the measuring sleep; its own wakeup at the end is not counted.
        var link = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &link, link.count - 1)
        let measuring = "/" + (String(decoding: link.prefix(max(0, length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: "/").last.map(String.init) ?? "?")
        Sleep.milliseconds(200)  // what the last jobs set off settles (a thread going back to sleep counts one)
        let before = switches()
        Sleep.seconds(seconds)
        let after = switches()
        let woke = after.compactMap { key, value -> String? in
            let delta = value - (before[key] ?? 0)
            return delta > 0 && !key.hasPrefix("executor-probe") && !key.hasSuffix(measuring) ? "\(key): \(delta)" : nil
        }
        print("idle wakeups \(woke.sorted())")
    }

    Glibc.exit(0)
}
while true { sleep(60) }
