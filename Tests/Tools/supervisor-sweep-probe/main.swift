// supervisor-sweep-probe: exercises the Supervisor's unknown-orphan sweep in a process of its
// own (a test runner also has Foundation-reaped children, which the sweep would take).
// As subreaper it starts orphans that exit while tracked children run, then checks that
// every orphan was reaped by exact pid and every tracked child kept its own status.
// Prints "PASS" and exits 0, or "FAIL: why" and exits 1.
import LinuxSys
import Supervisor
import Synchronization

func fail(_ why: String) -> Never {
    Console.output("FAIL: \(why)")
    exit(1)
}

let reaped = Mutex<[Int32: ExitStatus]>([:])
var options = Supervisor.Options()
options.sweepIntervalMilliseconds = 50
options.onUnknownReaped = { pid, status in reaped.withLock { $0[pid] = status } }
// --signalfd: as the shim runs it, SIGCHLD blocked before any thread and no sweep timer at
// all (an interval of an hour), so only SIGCHLD can get the orphans reaped.
if CommandLine.arguments.contains("--signalfd") {
    do throws(Errno) {
        try ChildSignals.block()
        guard let fd = try ChildSignals.descriptorIfBlockedEverywhere() else { fail("SIGCHLD not blocked everywhere") }
        options.childSignalDescriptor = fd
        options.sweepIntervalMilliseconds = 3_600_000
        options.idleSweepIntervalMilliseconds = 3_600_000
    } catch {
        fail("\(error)")
    }
}

// With --signalfd the orphans exit well after everything tracked, so that no pidfd event
// can set off the sweep that reaps them.
let orphanDelay = options.childSignalDescriptor == nil ? "0.2" : "1"
// The work runs as a task while the main thread parks, as in the shim: an async top-level
// main would run the main thread in libdispatch, which resets its signal mask.
let chosenOptions = options
let delay = orphanDelay
Task.detached {
let options = chosenOptions, orphanDelay = delay
do {
    try ChildProcesses.becomeSubreaper()
    let supervisor = try Supervisor(options: options)
    let null = try FileDescriptor.open("/dev/null")
    let dir = "/tmp/sweep-probe-\(ProcessIdentity.pid)"
    // Each launcher leaves an orphan that exits 3 later, then exits itself.
    var launchers: [Child] = []
    for i in 0..<5 {
        launchers.append(try supervisor.spawn(
            path: "/bin/sh", arguments: ["-c", "mkdir -p \(dir); (sleep \(orphanDelay); exit 3) & echo $! > \(dir)/\(i); exit 0"],
            environment: ["PATH=/usr/bin:/bin"], stdin: null, stdout: null, stderr: null))
    }
    // Tracked children exiting around the same time must keep their own statuses.
    var tracked: [Child] = []
    for i in 0..<5 {
        tracked.append(try supervisor.spawn(
            path: "/bin/sh", arguments: ["-c", "sleep 0.2; exit \(10 + i)"],
            environment: [], stdin: null, stdout: null, stderr: null))
    }
    for launcher in launchers {
        guard await supervisor.wait(launcher) == .exited(.exited(0)) else { fail("launcher status") }
    }
    for (i, child) in tracked.enumerated() {
        let outcome = await supervisor.wait(child)
        guard outcome == .exited(.exited(Int32(10 + i))) else { fail("tracked child \(i) got \(outcome)") }
    }
    var orphans: [Int32] = []
    for i in 0..<5 {
        guard let text = FileDescriptor.readAll("\(dir)/\(i)"),
              let pid = Int32(String(decoding: text, as: UTF8.self).filter { $0.isNumber })
        else { fail("no pid file \(i)") }
        orphans.append(pid)
    }
    let deadline = ContinuousClock.now + .seconds(5)
    while reaped.withLock({ state in orphans.contains { state[$0] == nil } }) {
        if ContinuousClock.now > deadline { fail("orphans not reaped: \(orphans) reaped=\(reaped.withLock { $0 })") }
        try await Task.sleep(for: .milliseconds(20))
    }
    for pid in orphans {
        guard reaped.withLock({ $0[pid] }) == .exited(3) else { fail("orphan \(pid) status") }
        // Reaped: no zombie left behind.
        if FileDescriptor.readAll("/proc/\(pid)/stat") != nil { fail("orphan \(pid) still present") }
    }
    // The launchers were tracked: the sweep must not have reported them as unknown.
    for launcher in launchers where reaped.withLock({ $0[launcher.pid] }) != nil {
        fail("tracked launcher \(launcher.pid) reaped as unknown")
    }
    supervisor.shutdown()
    for i in 0..<5 { Files.remove("\(dir)/\(i)") }
    Directories.removeIfEmpty(dir)
    Console.output("PASS")
    exit(0)
} catch {
    fail("\(error)")
}
}
parkForever()
