import LinuxSys
import Testing
import WardenTestSupport

/// The shim's cleanup (a rootfs still mounted, the sweep's leftovers) and the tests' leak audits
/// find mounts in /proc/self/mountinfo; a procfs file read in one go stops at about a page.
@Suite(.timeLimit(.minutes(1)), .serialized) struct MountsTests {
    @Test func mountsPastTheFirstPagesOfMountinfoAreSeen() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        // Each line names a long mount point: 48 of them put the last ones well past 8 KiB.
        let points = (0..<48).map { dir.file("mount-point-with-a-long-name-to-fill-mountinfo-\($0)") }
        defer { for point in points.reversed() { try? Mounts.unmount(point, detach: true) } }
        for point in points {
            try Directories.make(point)
            try Mounts.mount(source: "warden-test", target: point, type: "tmpfs", flags: Mounts.noExec, data: "size=4k")
        }
        let mountinfo = try #require(procBytes("/proc/self/mountinfo"))
        #expect(mountinfo.count > 8192, "mountinfo is \(mountinfo.count) bytes: the test needs it past two pages")
        let seen = Set(Mounts.current().map(\.mountPoint))
        #expect(points.allSatisfy(seen.contains), "missing: \(points.filter { !seen.contains($0) }.count) of \(points.count)")
        #expect(Mounts.isMountPoint(points.last!))
        let under = mountPoints(under: dir.path)
        #expect(under.count == points.count && under == points.sorted(by: >), "\(under.count) of \(points.count) under the directory")
        for point in points { try Mounts.unmount(point) }
        #expect(mountPoints(under: dir.path).isEmpty)
    }
}
