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
