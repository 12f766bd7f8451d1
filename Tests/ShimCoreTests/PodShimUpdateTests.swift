import ContainerdAPI
import Foundation
import Runsc
import SwiftProtobuf
import Testing

@testable import ShimCore

/// Update (CRI UpdateContainerResources, an in-place resize) through the runtime seam: the
/// resources forwarded as OCI JSON, `update` looked for once per shim, a runtime without it
/// refused by name, bad resources refused before anything runs, a hung probe bounded.
@Suite(.timeLimit(.minutes(1))) struct PodShimUpdateTests {
    typealias Pod = PodShimTests.Pod

    static func resources(_ json: String, type: String = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources")
        -> Google_Protobuf_Any
    {
        Google_Protobuf_Any.with {
            $0.typeURL = type
            $0.value = Data(json.utf8)
        }
    }

    static func error(_ body: () async throws -> Void) async -> ShimError? {
        do {
            try await body()
            return nil
        } catch let error as ShimError {
            return error
        } catch {
            return ShimError(.internal, "not a ShimError: \(error)")
        }
    }

    static func running(_ pod: Pod) async throws {
        try await pod.create("pod")
        _ = try await pod.shim.start(id: "pod", execID: "")
    }

    static func stop(_ pod: Pod) async throws {
        try await pod.shim.kill(id: "pod", execID: "", signal: 9, all: true)
        try await pod.published("/tasks/exit")
    }

    @Test func theResourcesReachTheRuntimeAndItsSubcommandsAreAskedOnce() async throws {
        let pod = try Pod()
        try await Self.running(pod)
        let json = #"{"memory":{"limit":104857600},"cpu":{"shares":512,"quota":50000,"period":100000}}"#
        try await pod.shim.update(id: "pod", resources: Self.resources(json))
        try await pod.shim.update(id: "pod", resources: Self.resources(#"{"memory":{"limit":209715200}}"#))
        #expect(pod.runtime.updated["pod"].map { String(decoding: $0, as: UTF8.self) } == #"{"memory":{"limit":209715200}}"#)
        #expect(pod.runtime.calls.filter { $0.hasPrefix("help") }.count == 1, "\(pod.runtime.calls)")
        #expect(pod.runtime.calls.filter { $0 == "update pod" }.count == 2)
        try await Self.stop(pod)
    }

    @Test func aRuntimeWithoutUpdateIsRefusedNamingItsVersion() async throws {
        let pod = try Pod()
        pod.runtime.hasUpdate.withLock { $0 = false }
        try await Self.running(pod)
        for _ in 0..<2 {
            let refusal = await Self.error { try await pod.shim.update(id: "pod", resources: Self.resources(#"{"memory":{"limit":1}}"#)) }
            #expect(refusal?.code == .failedPrecondition)
            #expect(refusal?.message.contains("runsc version in-memory-2024 has no update command") == true, "\(String(describing: refusal))")
        }
        #expect(pod.runtime.calls.filter { $0.hasPrefix("help") || $0.hasPrefix("version") }.count == 2, "\(pod.runtime.calls)")
        #expect(!pod.runtime.calls.contains("update pod"))
        #expect(try await pod.status("pod") == .running)
        try await Self.stop(pod)
    }

    @Test func badResourcesAndUnknownOrStoppedContainersAreRefusedBeforeTheRuntimeRuns() async throws {
        let pod = try Pod()
        try await Self.running(pod)
        let wrongType = await Self.error {
            try await pod.shim.update(id: "pod", resources: Self.resources("{}", type: "types.containerd.io/Something"))
        }
        #expect(wrongType?.code == .invalidArgument && wrongType?.message.contains("types.containerd.io/Something") == true)
        let empty = await Self.error { try await pod.shim.update(id: "pod", resources: Google_Protobuf_Any()) }
        #expect(empty?.code == .invalidArgument && empty?.message.contains("no resources") == true)
        let garbage = await Self.error { try await pod.shim.update(id: "pod", resources: Self.resources("[1, 2")) }
        #expect(garbage?.code == .invalidArgument && garbage?.message.contains("not OCI JSON") == true)
        let unknown = await Self.error { try await pod.shim.update(id: "nope", resources: Self.resources("{}")) }
        #expect(unknown?.code == .notFound)
        #expect(!pod.runtime.calls.contains { $0.hasPrefix("update") })
        try await Self.stop(pod)
        let stopped = await Self.error { try await pod.shim.update(id: "pod", resources: Self.resources("{}")) }
        #expect(stopped?.code == .failedPrecondition && stopped?.message.contains("stopped") == true, "\(String(describing: stopped))")
        #expect(!pod.runtime.calls.contains { $0.hasPrefix("update") })
    }

    /// `runsc help` hangs: the Update fails at the runtime's bound, the pod is untouched, and
    /// the failed probe is not remembered (the next Update asks again and goes through).
    @Test func aHungProbeIsBoundedAndAskedAgain() async throws {
        let pod = try Pod()
        try await Self.running(pod)
        pod.runtime.hang("help")
        let began = ContinuousClock.now
        let hung = await Self.error { try await pod.shim.update(id: "pod", resources: Self.resources("{}")) }
        #expect(hung?.code == .deadlineExceeded, "\(String(describing: hung))")
        // The runtime's bound is 300 ms; the slack is for the unit suite running in parallel on
        // two cores (1.28 s seen). An unbounded probe would never answer at all.
        #expect(ContinuousClock.now - began < .seconds(3))
        pod.runtime.heal()
        try await pod.shim.update(id: "pod", resources: Self.resources("{}"))
        #expect(pod.runtime.calls.filter { $0.hasPrefix("help") }.count == 2)
        #expect(try await pod.status("pod") == .running)
        try await Self.stop(pod)
    }
}
