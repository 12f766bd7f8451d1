#if WARDEN_TEST_HOOKS
import LinuxSys

/// Delays the tests use to force an order of events that otherwise shows only under load.
/// Compiled only into debug builds (`WARDEN_TEST_HOOKS`, Package.swift): the shipped shim
/// (scripts/build-shim.sh, release) has none of this. Each reads a file in the pod's runsc
/// root or up to two levels above it (where fake-runsc reads its `faults`), lines
/// `<container id> <milliseconds>`.
enum TestHooks {
    /// `delay-shutdown`: containerd's Shutdown for that container is answered that much later,
    /// which holds CRI between containerd dropping the task and marking the container exited.
    static func beforeShutdown(id: String, runscRoot: String) async {
        await delay("delay-shutdown", id: id, runscRoot: runscRoot)
    }

    /// `delay-ladder-tail`: the termination of that sandbox waits before its reap step, after
    /// the sandbox is dead and its exit published: a Delete then arrives mid-ladder.
    static func beforeLadderTail(sandboxID: String, runscRoot: String) async {
        await delay("delay-ladder-tail", id: sandboxID, runscRoot: runscRoot)
    }

    private static func delay(_ file: String, id: String, runscRoot: String) async {
        var directory = runscRoot
        for _ in 0..<3 {
            if let text = FileDescriptor.readText(directory + "/" + file) {
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ")
                    if words.count == 2, words[0] == id, let milliseconds = Int(words[1]) {
                        try? await Timers.sleep(for: .milliseconds(milliseconds))
                        return
                    }
                }
            }
            guard let slash = directory.lastIndex(of: "/"), slash != directory.startIndex else { return }
            directory = String(directory[..<slash])
        }
    }
}
#endif
