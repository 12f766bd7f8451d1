import Glibc
import Testing
@testable import LinuxSys

@Suite(.timeLimit(.minutes(1))) struct ProcessTableTests {
    /// A comm may hold spaces and parentheses; fields are counted after the last ')'.
    @Test func statWithParenthesesInTheNameParses() throws {
        let line = "4242 (a) (b c)) S 17 4242 4242 0 -1 4194560 90 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n"
        let stat = try #require(ProcStat.parse(line))
        #expect(stat.name == "a) (b c)")
        #expect(stat.state == "S")
        #expect(stat.parent == 17)
        #expect(stat.startTime == 987654)
    }

    @Test func truncatedStatIsRejected() {
        #expect(ProcStat.parse("4242 (x) S 1 2 3") == nil)
        #expect(ProcStat.parse("no parentheses at all") == nil)
    }

    @Test func ourOwnEntryAgreesWithStartTime() throws {
        let pid = getpid()
        let entry = try #require(ProcessTable.entry(pid))
        #expect(entry.parent == getppid())
        #expect(entry.startTime == ProcessTable.startTime(pid))
        #expect(entry.startTime > 0)
        #expect(!ProcessTable.isGoneOrZombie(pid))
        // pid_max is at most 2^22: this pid never exists.
        #expect(ProcessTable.startTime(Int32(1 << 23)) == nil)
        #expect(ProcessTable.isGoneOrZombie(Int32(1 << 23)))
    }
}

/// `Spawn.outputOf` (what `-info` asks runsc's version with): the output of a command that
/// ends; nil, at its deadline, for one that does not, which is killed and reaped then.
@Suite(.timeLimit(.minutes(1))) struct OutputOfTests {
    @Test func aCommandThatEndsGivesItsOutput() {
        let output = Spawn.outputOf(path: "/bin/sh", arguments: ["-c", "echo runsc version 1"], environment: [], timeoutMilliseconds: 5000)
        #expect(output.map { String(decoding: $0, as: UTF8.self) } == "runsc version 1\n")
        #expect(Spawn.outputOf(path: "/bin/sh", arguments: ["-c", "exit 3"], environment: [], timeoutMilliseconds: 5000) == nil)
        #expect(Spawn.outputOf(path: "/nonexistent", arguments: [], environment: [], timeoutMilliseconds: 5000) == nil)
    }

    @Test func aCommandThatHangsIsKilledAndReapedAtItsDeadline() {
        // A sleep with a duration no other test uses, to tell it among this process's children.
        let duration = "29.\(getpid() % 1000)"
        func ours() -> [Int32] {
            ProcessTable.children(of: getpid()).filter { pid in
                let text = (FileDescriptor.readAll("/proc/\(pid)/cmdline") ?? []).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                // A zombie has no cmdline left: its stat names it.
                let stat = String(decoding: FileDescriptor.readAll("/proc/\(pid)/stat") ?? [], as: UTF8.self)
                return text.contains(duration) || (stat.contains("(sleep)") && stat.contains(" Z "))
            }
        }
        let began = ContinuousClock.now
        let output = Spawn.outputOf(path: "/bin/sleep", arguments: [duration], environment: [], timeoutMilliseconds: 200)
        #expect(output == nil)
        #expect(ContinuousClock.now - began < .seconds(2), "bounded by its deadline")
        #expect(ours().isEmpty, "killed and reaped: \(ours())")
    }
}
