import Foundation
import LinuxSys
import Testing
import WardenTestSupport

@testable import WardenNode

/// sweep's kill acts on a (pid, start time) pair only: a pid now held by another process
/// (a different start time) is left alone.
@Suite(.serialized, .timeLimit(.minutes(1))) struct SweepTests {
    @Test func aProcessIsKilledOnlyIfItIsStillTheOneDoctorSaw() throws {
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        let pid = try Spawn.spawn(
            path: "/bin/sleep", arguments: ["30"], environment: [], stdin: null, stdout: null, stderr: null, newSession: true)
        let start = try #require(ProcessTable.startTime(pid))
        let deadline = ContinuousClock.now + .seconds(2)
        let wrong = Sweep.kill(pid: pid, startTime: start + 1, until: deadline)
        #expect(!wrong.0 && wrong.1.contains("another process"), "\(wrong)")
        #expect(!ProcessTable.isGoneOrZombie(pid), "left alone")
        let right = Sweep.kill(pid: pid, startTime: start, until: ContinuousClock.now + .seconds(2))
        #expect(right.0, "\(right)")
        #expect(ChildProcesses.waitBlocking(pid) == .signaled(9))
    }

    @Test func doctorSeesAnOrphanedRunscProcessOnlyWithoutAShimAncestor() {
        func entry(_ pid: Int32, _ parent: Int32, _ arguments: [String]) -> ProcessEntry {
            ProcessEntry(pid: pid, parent: parent, name: "x", arguments: arguments, startTime: 1, state: "S")
        }
        let scope = DoctorScope(containerdStates: [], runscRoots: ["/r"], containerdAddresses: [])
        let processes = [
            entry(10, 1, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "n", "-id", "live", "-address", "/a"]),
            entry(11, 10, ["runsc-sandbox", "--root=/r/n", "boot", "live"]),
            entry(12, 11, ["runsc-gofer", "--root=/r/n", "gofer", "live"]),
            entry(20, 1, ["runsc-sandbox", "--root=/r/n", "boot", "gone"]),
            entry(30, 1, ["runsc-sandbox", "--root=/elsewhere", "boot", "other"]),
        ]
        let found = Doctor.orphanProcesses(scope, NodeView(processes: processes))
        #expect(found.map(\.pid) == [20], "only the one whose shim is gone, and only in scope: \(found)")
    }

    /// A process that survives SIGKILL (held in a frozen v1 freezer cgroup, as one in an
    /// uninterruptible wait would) costs sweep its per-item bound and is reported, not waited
    /// for: the item fails at the bound and the sweep goes on.
    @Test func aProcessThatSurvivesSigkillEndsItsItemAtTheBound() throws {
        guard FileManager.default.fileExists(atPath: "/sys/fs/cgroup/freezer") else { return }
        let freezer = "/sys/fs/cgroup/freezer/wsweep-\(getpid())"
        try Directories.make(freezer)
        defer { _ = try? Cgroups.remove(freezer) }
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        let pid = try Spawn.spawn(
            path: "/bin/sleep", arguments: ["30"], environment: [], stdin: null, stdout: null, stderr: null, newSession: true)
        let start = try #require(ProcessTable.startTime(pid))
        try Cgroups.addProcess(pid, to: freezer)
        try Cgroups.setFrozen(freezer, true)
        for _ in 0..<100 where Cgroups.freezerState(freezer) != "FROZEN" { Sleep.milliseconds(10) }
        #expect(Cgroups.freezerState(freezer) == "FROZEN")
        let finding = Finding(
            kind: .orphanProcess, what: "pid \(pid) (sleep)", owner: "test", why: "test", pid: pid, startTime: start)
        let began = ContinuousClock.now
        let (done, detail) = Sweep.clear(finding, scope: DoctorScope(containerdStates: [], runscRoots: [], containerdAddresses: []),
            within: .seconds(1))
        let took = ContinuousClock.now - began
        #expect(!done && detail.contains("still running"), "\(detail)")
        #expect(took >= .seconds(1) && took < .seconds(2), "the item took \(took), its bound is 1 s")
        // Thawed, the pending SIGKILL lands.
        try Cgroups.setFrozen(freezer, false)
        #expect(ChildProcesses.waitBlocking(pid) == .signaled(9))
    }

    /// A sandbox's control socket (runsc 2024 keeps it in its root, `runsc delete` removes it)
    /// is stale state once the sandbox is gone, like its state file; a live sandbox's is not.
    @Test func doctorFindsAControlSocketLeftByAGoneSandbox() throws {
        let dir = try TempDir("wdoc")
        defer { dir.remove() }
        let pod = dir.file("n/pod")
        try FileManager.default.createDirectory(atPath: pod, withIntermediateDirectories: true)
        for name in ["runsc-gone.sock", "runsc-live.sock", "live_sandbox:live.state", "notes.txt"] {
            FileManager.default.createFile(atPath: pod + "/" + name, contents: Data())
        }
        let scope = DoctorScope(containerdStates: [], runscRoots: [dir.path], containerdAddresses: [])
        let live = ProcessEntry(
            pid: 11, parent: 1, name: "x", arguments: ["runsc-sandbox", "--root=\(pod)", "boot", "live"], startTime: 1, state: "S")
        let found = Doctor.staleRunscState(scope, NodeView(processes: [live]))
        #expect(found.map(\.what) == [pod + "/runsc-gone.sock"], "\(found)")
        #expect(found.first?.owner.contains("sandbox gone") == true)
    }

    /// containerd 2.x's shim sandboxer (`sandboxer = "shim"`) keeps a pod's bundle under the
    /// sandbox controller's state, not the task manager's: doctor finds one whose shim is
    /// gone as it finds a task's, leaves one whose shim still answers, and sweep removes the
    /// stale one.
    @Test func doctorFindsAStaleBundleOfTheShimSandboxer() throws {
        let dir = try TempDir("wdoc")
        defer { dir.remove() }
        let state = dir.file("state")
        let pods = state + "/io.containerd.sandbox.controller.v1.shim/k8s.io"
        try FileManager.default.createDirectory(atPath: state + "/s", withIntermediateDirectories: true)
        var sockets: [String: Int32] = [:]
        for id in ["gone", "live"] {
            try FileManager.default.createDirectory(atPath: pods + "/" + id, withIntermediateDirectories: true)
            let socket = state + "/s/" + id
            sockets[id] = try UnixSocket.listen(path: socket)
            try Files.write(pods + "/" + id + "/address", "unix://" + socket)
        }
        defer { if let live = sockets["live"] { UnixSocket.close(live) } }
        // The gone pod's shim died: its socket file stays, nothing listens on it.
        UnixSocket.close(sockets["gone"]!)
        let scope = DoctorScope(containerdStates: [state], runscRoots: [], containerdAddresses: [])
        let found = Doctor.examine(scope, processes: [])
        let bundles = found.filter { $0.kind == .staleBundle }
        #expect(bundles.map(\.what) == [pods + "/gone"], "\(found)")
        #expect(bundles.first?.owner == "namespace k8s.io, container gone")
        #expect(found.contains { $0.kind == .staleSocket && $0.what == state + "/s/gone" }, "\(found)")
        #expect(!found.contains { $0.what.contains("live") }, "the live pod is no finding: \(found)")
        let bundle = try #require(bundles.first)
        let (done, detail) = Sweep.clear(bundle, scope: scope, within: .seconds(2))
        #expect(done, "\(detail)")
        #expect(!FileManager.default.fileExists(atPath: pods + "/gone") && FileManager.default.fileExists(atPath: pods + "/live"))
    }
}
