import Foundation
import LinuxSys
import Supervisor
import Testing
import WardenTestSupport

@testable import ShimCore

/// Delete's removal of the cgroup runsc leaves after a killed sandbox. The tests make their own
/// cgroups under `/wdt-<random>` in the pids and freezer hierarchies, and remove them.
@Suite(.timeLimit(.minutes(1)), .serialized) struct ContainerCgroupsTests {
    @Test func onlyAbsolutePlainSpecPathsAreManaged() {
        #expect(ContainerCgroups(specPath: "/k8s.io/abc")?.path == "/k8s.io/abc")
        #expect(ContainerCgroups(specPath: "/kubepods//burstable/pod1/abc/")?.path == "/kubepods/burstable/pod1/abc")
        #expect(ContainerCgroups(specPath: nil) == nil)
        #expect(ContainerCgroups(specPath: "") == nil)
        #expect(ContainerCgroups(specPath: "/") == nil, "the root cgroup is never the container's")
        #expect(ContainerCgroups(specPath: "k8s.io/abc") == nil, "relative: runsc resolves it against its own cgroup")
        #expect(ContainerCgroups(specPath: "system.slice:cri-containerd:abc") == nil, "a systemd unit")
        #expect(ContainerCgroups(specPath: "/k8s.io/../etc") == nil)
    }

    @Test func hierarchiesComeFromMountinfo() {
        let mountinfo = """
            25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
            36 25 0:31 / /sys/fs/cgroup/freezer rw,relatime shared:14 - cgroup cgroup rw,freezer
            37 25 0:32 / /sys/fs/cgroup/unified rw,nosuid shared:15 - cgroup2 cgroup2 rw
            40 25 0:33 /kubepods/pod1 /host\\040cg/memory rw master:3 - cgroup cgroup rw,memory
            41 25 0:34 / /mnt/looks-like-cgroup rw - tmpfs cgroup rw
            """
        let found = Cgroups.hierarchies(in: Mounts.entries(mountinfo: mountinfo))
        #expect(found == [
            .init(mountPoint: "/sys/fs/cgroup/freezer", root: "/", type: "cgroup"),
            .init(mountPoint: "/sys/fs/cgroup/unified", root: "/", type: "cgroup2"),
            .init(mountPoint: "/host cg/memory", root: "/kubepods/pod1", type: "cgroup"),
        ])
        #expect(found[0].directory(of: "/k8s.io/c1") == "/sys/fs/cgroup/freezer/k8s.io/c1")
        #expect(found[2].directory(of: "/kubepods/pod1/c1") == "/host cg/memory/c1")
        #expect(found[2].directory(of: "/kubepods/pod10/c1") == nil, "a mount that does not show the cgroup")
    }

    /// The sandbox's cgroup at its Delete: a process still in it is SIGKILLed by pidfd, and the
    /// directory goes from every hierarchy.
    @Test func leftoversAreKilledAndTheDirectoriesRemoved() async throws {
        let scratch = try TestCgroup()
        defer { scratch.remove() }
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let sleeper = try scratch.startSleeper(supervisor)
        let cgroups = try #require(ContainerCgroups(specPath: scratch.containerPath))
        #expect(cgroups.directories(in: scratch.hierarchies).count == 2)

        let report = await cgroups.release(
            killingLeftovers: true, within: .seconds(5), supervisor: supervisor, hierarchies: scratch.hierarchies)
        #expect(report.killed == 1, "\(report)")
        #expect(report.left.isEmpty, "\(report)")
        #expect(Set(report.removed) == Set(scratch.containerDirectories))
        #expect(scratch.containerDirectories.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        let outcome = try await withTimeout(.seconds(5)) { await supervisor.wait(sleeper) }
        #expect(outcome == .exited(.signaled(9)))
    }

    /// A subcontainer's cgroup is only removed when empty: a process in it is reported, not killed.
    @Test func withoutKillingAPopulatedCgroupIsReportedAndKept() async throws {
        let scratch = try TestCgroup()
        defer { scratch.remove() }
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let sleeper = try scratch.startSleeper(supervisor)
        defer { _ = try? supervisor.signal(sleeper, 9) }
        let cgroups = try #require(ContainerCgroups(specPath: scratch.containerPath))

        let report = await cgroups.release(
            killingLeftovers: false, within: .seconds(5), supervisor: supervisor, hierarchies: scratch.hierarchies)
        #expect(report.killed == 0)
        #expect(report.removed.isEmpty)
        #expect(report.left.count == 2 && report.left.allSatisfy { $0.contains("processes [\(sleeper.pid)]") }, "\(report)")
        #expect(supervisor.outcome(sleeper) == nil, "the process was left running")
        #expect(scratch.containerDirectories.allSatisfy { FileManager.default.fileExists(atPath: $0) })
    }

    /// The shim in the sandbox's cgroup (containerd can place it there) is never signalled.
    @Test func theShimItselfIsNeverKilled() async throws {
        let scratch = try TestCgroup()
        defer { scratch.remove() }
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let pids = try #require(scratch.hierarchies.first)
        let ownCgroup = try #require(TestCgroup.currentCgroup(of: pids))
        try scratch.move(getpid(), into: pids)
        defer { try? String(getpid()).write(toFile: pids.mountPoint + ownCgroup + "/cgroup.procs", atomically: false, encoding: .utf8) }
        let cgroups = try #require(ContainerCgroups(specPath: scratch.containerPath))

        let report = await cgroups.release(
            killingLeftovers: true, within: .seconds(1), supervisor: supervisor, hierarchies: [pids])
        #expect(report.killed == 0)
        #expect(report.left.count == 1, "kept while the shim is in it: \(report)")
    }

    @Test func aCgroupRunscRemovedIsNothingToDo() async throws {
        let supervisor = try testSupervisor()
        defer { supervisor.shutdown() }
        let cgroups = try #require(ContainerCgroups(specPath: "/wdt-never-made-\(UInt32.random(in: 0...UInt32.max))/c1"))
        let report = await cgroups.release(killingLeftovers: true, within: .seconds(1), supervisor: supervisor)
        #expect(report.removed.isEmpty && report.left.isEmpty && report.killed == 0)
    }
}

/// `/wdt-<random>/c1` in the pids and freezer v1 hierarchies, as runsc makes a container's cgroup.
struct TestCgroup {
    let parentPath = "/wdt-\(UInt32.random(in: 0...UInt32.max))"
    var containerPath: String { parentPath + "/c1" }
    let hierarchies: [Cgroups.Hierarchy]

    init() throws {
        hierarchies = Cgroups.mountedHierarchies().filter {
            $0.type == "cgroup" && $0.root == "/" && ($0.mountPoint.hasSuffix("/pids") || $0.mountPoint.hasSuffix("/freezer"))
        }
        guard hierarchies.count == 2 else { throw TestTimedOut(limit: .zero, what: "pids and freezer v1 hierarchies: found \(hierarchies)") }
        for directory in containerDirectories {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
    }

    var containerDirectories: [String] { hierarchies.map { $0.mountPoint + containerPath } }

    func move(_ pid: Int32, into hierarchy: Cgroups.Hierarchy) throws {
        try String(pid).write(toFile: hierarchy.mountPoint + containerPath + "/cgroup.procs", atomically: false, encoding: .utf8)
    }

    /// A `sleep` in the container cgroup of every hierarchy.
    func startSleeper(_ supervisor: Supervisor) throws -> Child {
        let null = try FileDescriptor.open("/dev/null")
        defer { FileDescriptor.close(null) }
        let child = try supervisor.spawn(
            path: "/bin/sleep", arguments: ["1000"], environment: [], stdin: null, stdout: null, stderr: null)
        for hierarchy in hierarchies { try move(child.pid, into: hierarchy) }
        return child
    }

    /// This process's cgroup in `hierarchy`, from /proc/self/cgroup.
    static func currentCgroup(of hierarchy: Cgroups.Hierarchy) -> String? {
        let controller = URL(fileURLWithPath: hierarchy.mountPoint).lastPathComponent
        let lines = procText("/proc/self/cgroup")?.split(separator: "\n") ?? []
        for line in lines {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if fields.count == 3 && fields[1].split(separator: ",").contains(Substring(controller)) { return String(fields[2]) }
        }
        return nil
    }

    /// Whatever is left: processes SIGKILLed by pid (only the test's own sleepers can be there), then the directories.
    func remove() {
        for directory in containerDirectories {
            for pid in Cgroups.processes(in: directory) ?? [] where pid != getpid() { kill(pid, SIGKILL) }
        }
        for directory in containerDirectories {
            for _ in 0..<100 where (try? Cgroups.remove(directory)) == nil { usleep(10_000) }
        }
        for hierarchy in hierarchies { try? Cgroups.remove(hierarchy.mountPoint + parentPath) }
    }
}
