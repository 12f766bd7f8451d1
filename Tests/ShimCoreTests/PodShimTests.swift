import Config
import ContainerdAPI
import Foundation
import LinuxSys
import Runsc
import Supervisor
import SwiftProtobuf
import Testing
import WardenTestSupport

@testable import ShimCore

/// The pod actor's state machine through the runtime seam, with the in-memory runtime and
/// supervision (InMemoryRuntime.swift): no containerd, no runsc, no process. Orders of
/// create/start/exec/kill/delete, exits racing kills, a hung runtime call, a Delete joining a
/// ladder already running, each with the events the pod published and its bounds.
@Suite(.timeLimit(.minutes(1))) struct PodShimTests {
    /// The deadlines of every test: short, so that a bound missed is seen.
    static var deadlines: WardenConfig.Deadlines {
        var deadlines = WardenConfig.Deadlines()
        deadlines.runscCallTimeout = .milliseconds(300)
        deadlines.createTimeout = .milliseconds(300)
        deadlines.killGrace = .milliseconds(100)
        deadlines.stopDeadline = .seconds(1)
        deadlines.deleteDeadline = .seconds(1)
        deadlines.shutdownDeadline = .milliseconds(100)
        return deadlines
    }

    final class Pod: @unchecked Sendable {  // its fields are Sendable; the class is never mutated
        let dir: TempDir
        let supervision = InMemorySupervision()
        let runtime: InMemoryRuntime
        let events = RecordedEvents()
        let shim: PodShim

        init() throws {
            dir = try TempDir("wpod")
            runtime = InMemoryRuntime(root: dir.file("runsc"), supervision: supervision)
            try FileManager.default.createDirectory(atPath: dir.file("scratch"), withIntermediateDirectories: true)
            shim = PodShim(
                runtime: runtime, supervision: supervision, stdioCopier: try StdioCopier(), events: events,
                log: ShimLog(fifo: nil, level: .error), namespace: "k8s.io", scratchDirectory: dir.file("scratch"),
                deadlines: PodShimTests.deadlines, netnsRelease: .off, onEmptyShutdown: {})
        }

        deinit { dir.remove() }

        /// A container's bundle: the pod's sandbox (no `sandbox`), or a container joining it.
        func bundle(_ id: String, joining sandbox: String? = nil) throws -> String {
            let bundle = dir.file("bundles/\(id)")
            try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
            var annotations = ["io.kubernetes.cri.container-type": sandbox == nil ? "sandbox" : "container"]
            annotations["io.kubernetes.cri.sandbox-id"] = sandbox ?? id
            let spec: [String: Any] = [
                "ociVersion": "1.0.2", "process": ["args": ["sleep", "100000"], "cwd": "/"], "root": ["path": "rootfs"],
                "annotations": annotations,
            ]
            try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: bundle + "/config.json"))
            return bundle
        }

        @discardableResult
        func create(_ id: String, joining sandbox: String? = nil) async throws -> UInt32 {
            var request = Containerd_Task_V2_CreateTaskRequest()
            request.id = id
            request.bundle = try bundle(id, joining: sandbox)
            return try await shim.create(request)
        }

        func status(_ id: String, _ execID: String = "") async throws -> Containerd_V1_Types_Status {
            try await shim.state(id: id, execID: execID).status
        }

        func exec(_ id: String, _ execID: String) async throws -> UInt32 {
            var request = Containerd_Task_V2_ExecProcessRequest()
            request.id = id
            request.execID = execID
            request.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
            request.spec.value = try JSONSerialization.data(withJSONObject: ["args": ["true"], "cwd": "/"])
            try await shim.exec(request)
            return try await shim.start(id: id, execID: execID)
        }

        /// Waits (bounded) until the events include `topic` `count` times.
        func published(_ topic: String, count: Int = 1) async throws {
            try await withTimeout(.seconds(5), "\(count)× \(topic) in \(events.topics)") {
                while self.events.topics.filter({ $0 == topic }).count < count { try await Task.sleep(for: .milliseconds(5)) }
            }
        }
    }

    static func code(_ body: () async throws -> Void) async -> ShimError.Code? {
        do {
            try await body()
            return nil
        } catch let error as ShimError {
            return error.code
        } catch {
            return nil
        }
    }

    @Test func aPodIsCreatedStartedKilledAndDeletedInOrder() async throws {
        let pod = try Pod()
        let pid = try await pod.create("pod")
        #expect(pid == UInt32(pod.runtime.sandboxPid("pod") ?? 0) && pid >= 5_000_000)
        #expect(try await pod.status("pod") == .created)
        #expect(try await pod.shim.start(id: "pod", execID: "") == pid)
        #expect(try await pod.status("pod") == .running)
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: false)
        try await pod.published("/tasks/exit")
        #expect(try await pod.status("pod") == .stopped)
        let deleted = try await pod.shim.delete(id: "pod", execID: "")
        #expect(deleted.exitStatus == 137)
        #expect(pod.events.topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"])
        #expect(await pod.shim.isEmpty)
    }

    @Test func operationsOutOfOrderAreRefusedAndChangeNothing() async throws {
        let pod = try Pod()
        #expect(await Self.code { _ = try await pod.shim.start(id: "pod", execID: "") } == .notFound)
        try await pod.create("pod")
        #expect(await Self.code { try await pod.create("pod") } == .alreadyExists)
        #expect(await Self.code { _ = try await pod.exec("pod", "e1") } == .failedPrecondition)  // not running yet
        _ = try await pod.shim.start(id: "pod", execID: "")
        #expect(await Self.code { _ = try await pod.shim.start(id: "pod", execID: "") } == .failedPrecondition)
        #expect(await Self.code { _ = try await pod.shim.delete(id: "pod", execID: "") } == .failedPrecondition)
        #expect(await Self.code { try await pod.shim.resume(id: "pod") } == .failedPrecondition)
        #expect(try await pod.status("pod") == .running)
        try await pod.shim.pause(id: "pod")
        #expect(try await pod.status("pod") == .paused)
        try await pod.shim.resume(id: "pod")
        #expect(try await pod.status("pod") == .running)
        #expect(pod.events.topics == ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed"])
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await pod.published("/tasks/exit")
    }

    @Test func aKilledCreatedContainerExitsUnstartedAndNeverPublishesStart() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: false)
        #expect(try await pod.status("pod") == .stopped)
        #expect(await Self.code { _ = try await pod.shim.start(id: "pod", execID: "") } == .failedPrecondition)
        #expect(!pod.events.topics.contains("/tasks/start"))
        _ = try await pod.shim.delete(id: "pod", execID: "")
        #expect(!pod.supervision.isAlive(pod.runtime.sandboxPid("pod") ?? 0))
    }

    @Test func anExecRunsExitsAndIsDeleted() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        let execPid = try await pod.exec("pod", "e1")
        #expect(try await pod.status("pod", "e1") == .running)
        pod.supervision.exit(Int32(execPid), .exited(3))
        try await pod.published("/tasks/exit")
        #expect(try await pod.shim.wait(id: "pod", execID: "e1").exitStatus == 3)
        #expect(try await pod.shim.delete(id: "pod", execID: "e1").exitStatus == 3)
        #expect(await Self.code { _ = try await pod.status("pod", "e1") } == .notFound)
        #expect(try await pod.status("pod") == .running)
        #expect(pod.events.topics == ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"])
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await pod.published("/tasks/exit", count: 2)
    }

    /// The sandbox exits by itself while a SIGTERM for it is in flight, and again with the
    /// order reversed: one TaskExit either way, with the status of what happened first.
    @Test func anExitRacingAKillIsPublishedOnce() async throws {
        for exitFirst in [true, false] {
            let pod = try Pod()
            try await pod.create("pod")
            _ = try await pod.shim.start(id: "pod", execID: "")
            let sandbox = pod.runtime.sandboxPid("pod") ?? 0
            if exitFirst {
                pod.supervision.exit(sandbox, .exited(0))
                try await pod.published("/tasks/exit")
                #expect(await Self.code { try await pod.shim.kill(id: "pod", execID: "", signal: 15, all: false) } == .notFound)
            } else {
                async let killed: Void = pod.shim.kill(id: "pod", execID: "", signal: 15, all: false)
                pod.supervision.exit(sandbox, .exited(0))
                _ = try? await killed
                try await pod.published("/tasks/exit")
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(pod.events.topics.filter { $0 == "/tasks/exit" }.count == 1, "\(exitFirst): \(pod.events.topics)")
            let deleted = try await pod.shim.delete(id: "pod", execID: "")
            #expect([0, 143].contains(deleted.exitStatus), "\(exitFirst): \(deleted.exitStatus)")
        }
    }

    /// runsc kill hangs: Kill answers within runsc_call_timeout, the ladder SIGKILLs the
    /// sandbox through the supervision and the exit is published within stop_deadline.
    @Test func aHungRuntimeKillIsBoundedAndTheLadderEndsThePod() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        let sandbox = pod.runtime.sandboxPid("pod") ?? 0
        pod.runtime.hang("kill")
        let began = ContinuousClock.now
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        // Kill answers at 0.9 × runsc_call_timeout; the slack is for a loaded machine (the
        // unit suite runs its tests in parallel on two cores: 503 ms was seen against 500).
        #expect(ContinuousClock.now - began < Self.deadlines.runscCallTimeout + .milliseconds(700))
        try await pod.published("/tasks/exit")
        // The same slack reason: 1.61 s was seen against stop_deadline 1 s + 0.5.
        #expect(ContinuousClock.now - began < Self.deadlines.stopDeadline + .seconds(1))
        #expect(!pod.supervision.isAlive(sandbox))
        #expect(pod.supervision.signalsSent.contains { $0.pid == sandbox && $0.signal == 9 }, "SIGKILL by handle")
        #expect(try await pod.shim.delete(id: "pod", execID: "").exitStatus == 137)
    }

    /// What runsc left re-parented to the shim (fake-runsc's subcontainer process) is killed
    /// with the pod, and so is what descends from it, in the same sweep: once its parent is
    /// killed, the kernel re-parents the descendant only after the parent is reaped, too late
    /// for the sweep, and nothing would sweep again before the sandbox's Delete.
    @Test func aLeftoverOfThePodIsKilledWithWhatDescendsFromIt() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        let leftover = pod.supervision.makeProcess(parent: .shim)
        let itsChild = pod.supervision.makeProcess(parent: .process(leftover))
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await pod.published("/tasks/exit")
        #expect(!pod.supervision.isAlive(leftover), "the leftover re-parented to the shim")
        #expect(!pod.supervision.isAlive(itsChild), "the leftover's child")
        #expect(try await pod.shim.delete(id: "pod", execID: "").exitStatus == 137)
    }

    /// Delete arrives as containerd sends it, right after the TaskExit, while the ladder a
    /// Kill started on a hung runtime is still finishing (its Kill has not even answered): it
    /// joins that ladder (no second one, no second runsc kill) and returns within
    /// delete_deadline with the exit the ladder caused. Also refused before the exit.
    @Test func aDeleteJoinsTheLadderAKillStarted() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        pod.runtime.hang("kill", "delete")
        async let killed: Void = pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        #expect(await Self.code { _ = try await pod.shim.delete(id: "pod", execID: "") } == .failedPrecondition)
        try await pod.published("/tasks/exit")
        let began = ContinuousClock.now
        let deleted = try await pod.shim.delete(id: "pod", execID: "")
        #expect(ContinuousClock.now - began < Self.deadlines.deleteDeadline + .milliseconds(200))
        try await killed
        #expect(deleted.exitStatus == 137)
        #expect(pod.events.topics.filter { $0 == "/tasks/exit" }.count == 1, "\(pod.events.topics)")
        #expect(pod.runtime.calls.filter { $0 == "kill pod" }.count == 1, "one runsc kill for the pod: \(pod.runtime.calls)")
        #expect(await pod.shim.isEmpty)
    }

    /// A container joining the sandbox: its exit is the runtime's (`wait`), not a process's.
    @Test func aSubcontainerExitsThroughTheRuntimeAndThePodStopsWithIt() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        try await pod.create("app", joining: "pod")
        _ = try await pod.shim.start(id: "app", execID: "")
        #expect(try await pod.status("app") == .running)
        pod.runtime.containerExits("app", code: 2)
        try await pod.published("/tasks/exit")
        #expect(try await pod.status("app") == .stopped)
        #expect(try await pod.shim.delete(id: "app", execID: "").exitStatus == 2)
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await pod.published("/tasks/exit", count: 2)
        #expect(try await pod.shim.delete(id: "pod", execID: "").exitStatus == 137)
        #expect(await pod.shim.isEmpty)
    }

    /// A create the runtime fails: the task is `failed` (stopped, 255), Kill and Delete of it
    /// succeed, and its sandbox does not outlive it.
    @Test func aFailedCreateLeavesAFailedTaskThatDeletes() async throws {
        let pod = try Pod()
        pod.runtime.fail("start")
        try await pod.create("pod")
        #expect(await Self.code { _ = try await pod.shim.start(id: "pod", execID: "") } == .internal)
        #expect(try await pod.shim.state(id: "pod", execID: "").exitStatus == 255)
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: false)
        _ = try await pod.shim.delete(id: "pod", execID: "")
        #expect(!pod.supervision.isAlive(pod.runtime.sandboxPid("pod") ?? 0))
        #expect(!pod.events.topics.contains("/tasks/start"))
    }

    /// Stats while the pod is stopping (containerd's collector asks on its own clock): empty
    /// metrics, not runsc's failure to read an exiting container; while it runs, the failure;
    /// once exited, empty.
    @Test func statsOfAStoppingPodAreEmptyAndOfARunningOneTheRuntimesAnswer() async throws {
        let pod = try Pod()
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
        // The in-memory runtime keeps no stats: its answer is an error.
        #expect(await Self.code { _ = try await pod.shim.stats(id: "pod") } == .internal)
        pod.runtime.hang("kill")
        async let killed: Void = pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await Task.sleep(for: .milliseconds(50))  // the ladder is waiting on runsc kill
        #expect(try await pod.shim.stats(id: "pod").typeURL.hasSuffix("io.containerd.cgroups.v1.Metrics"))
        try await killed
        try await pod.published("/tasks/exit")
        #expect(try await pod.shim.stats(id: "pod").value.isEmpty)
    }
}
