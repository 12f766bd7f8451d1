import Foundation
import LinuxSys
import SandboxControl
import Synchronization
import Testing
import WardenTestSupport

/// The urpc codec and calls against a control server played here: what runsc's server
/// answers, and what a hung, closing or lying one does.
@Suite(.timeLimit(.minutes(1)))
struct SandboxControlTests {
    // MARK: codec

    @Test func anAnswerEndsWhereItsObjectCloses() throws {
        let method = "m"
        #expect(try URPC.endOfObject(Array(#"{"success":true,"result":[{"pid":1}]}"#.utf8), method: method) == 37)
        #expect(try URPC.endOfObject(Array(#"{"success":true,"result":[{"pid":1}"#.utf8), method: method) == nil)
        // Braces and escaped quotes inside strings do not count.
        let text = #" {"err":"a } \" { b","success":false}"#
        #expect(try URPC.endOfObject(Array(text.utf8), method: method) == text.utf8.count)
        #expect(try URPC.endOfObject(Array((text + "trailing").utf8), method: method) == text.utf8.count)
        #expect(throws: ControlError.malformed(method: method, detail: #"not a JSON object: "HTTP/1.1 400""#)) {
            try URPC.endOfObject(Array("HTTP/1.1 400".utf8), method: method)
        }
    }

    @Test func aFailedAnswerIsRunscsTextAndAWrongOneNamesWhatWasWrong() throws {
        let failed = Array(#"{"success":false,"err":"no container with ID \"x\"","result":null}"#.utf8)
        #expect(throws: ControlError.refused(method: "w", message: #"no container with ID "x""#)) {
            try URPC.result(failed, as: UInt32.self, method: "w")
        }
        let wrong = Array(#"{"success":true,"err":"","result":"banana"}"#.utf8)
        #expect(throws: ControlError.malformed(method: "w", detail: #"expected UInt32 at result in "{"success":true,"err":"","result":"banana"}""#)) {
            try URPC.result(wrong, as: UInt32.self, method: "w")
        }
        #expect(try URPC.result(Array(#"{"success":true,"err":"","result":768}"#.utf8), as: UInt32.self, method: "w") == 768)
    }

    @Test func waitStatusesBecomeWhatRunscWaitPrints() {
        #expect(SandboxControl.exitStatus(waitStatus: 0) == 0)
        #expect(SandboxControl.exitStatus(waitStatus: 3 << 8) == 3)
        #expect(SandboxControl.exitStatus(waitStatus: 9) == 137)
        #expect(SandboxControl.exitStatus(waitStatus: 15 | 0x80) == 143)  // core dumped
    }

    // MARK: calls

    @Test func aCallIsOneObjectOnItsOwnConnectionAndItsAnswerIsDecoded() async throws {
        let server = try ScriptedServer { request in
            #expect(request == #"{"method":"containerManager.Wait","arg":"c1"}"# || request == #"{"arg":"c1","method":"containerManager.Wait"}"#)
            return .answer(#"{"success":true,"err":"","result":33280}"#)  // exit 130 as a status: 0x8200
        }
        defer { server.stop() }
        let loop = try EventLoop(name: "control-test")
        defer { loop.stop() }
        let control = SandboxControl(socketPath: server.path, loop: loop)
        #expect(try await control.wait("c1", timeout: .seconds(5)) == 130)
        #expect(server.connections == 1)
    }

    @Test func aLongSocketPathIsReachedThroughItsDirectory() async throws {
        // runsc's socket under a pod's root is longer than sun_path's 108 bytes.
        let pod = String(repeating: "b", count: 64)
        let server = try ScriptedServer(under: "k8s.io/\(pod)", name: "runsc-\(pod).sock") { _ in
            .answer(#"{"success":true,"err":"","result":[{"pid":1,"cmd":"sleep"},{"pid":7}]}"#)
        }
        defer { server.stop() }
        #expect(server.path.utf8.count > 108)
        let loop = try EventLoop(name: "control-test")
        defer { loop.stop() }
        #expect(try await SandboxControl(socketPath: server.path, loop: loop).processes("c1", timeout: .seconds(5)) == [1, 7])
    }

    @Test func aHungServerIsATimeoutAtTheDeadlineAndTheConnectionIsClosed() async throws {
        let server = try ScriptedServer { _ in .hang }
        defer { server.stop() }
        let loop = try EventLoop(name: "control-test")
        defer { loop.stop() }
        let control = SandboxControl(socketPath: server.path, loop: loop)
        let began = ContinuousClock.now
        await #expect(throws: ControlError.timedOut(method: "containerManager.Signal", after: .milliseconds(300))) {
            try await control.signal("c1", signal: 9, mode: .allProcesses, timeout: .milliseconds(300))
        }
        #expect(ContinuousClock.now - began < TestBounds.cutShort(.milliseconds(300)))
        // The server sees the shim hang up: nothing of the call is left open.
        try await withTimeout(.seconds(5)) { while server.hangUps < 1 { try await Task.sleep(for: .milliseconds(10)) } }
    }

    @Test func aCancelledWaitClosesItsConnection() async throws {
        let server = try ScriptedServer { _ in .hang }
        defer { server.stop() }
        let loop = try EventLoop(name: "control-test")
        defer { loop.stop() }
        let control = SandboxControl(socketPath: server.path, loop: loop)
        let waiter = Task { try await control.wait("c1") }
        try await withTimeout(.seconds(5)) { while server.requests < 1 { try await Task.sleep(for: .milliseconds(10)) } }
        waiter.cancel()
        await #expect(throws: ControlError.cancelled(method: "containerManager.Wait")) { try await waiter.value }
        try await withTimeout(.seconds(5)) { while server.hangUps < 1 { try await Task.sleep(for: .milliseconds(10)) } }
    }

    @Test func closedGarbageAndMissingServersAreNamedErrors() async throws {
        let loop = try EventLoop(name: "control-test")
        defer { loop.stop() }
        let closing = try ScriptedServer { _ in .answerThenClose(#"{"success":tr"#) }
        defer { closing.stop() }
        await #expect(throws: ControlError.closed(method: "containerManager.Processes", received: 13)) {
            try await SandboxControl(socketPath: closing.path, loop: loop).processes("c1", timeout: .seconds(5))
        }
        let garbage = try ScriptedServer { _ in .answer("\u{1}\u{2}garbage") }
        defer { garbage.stop() }
        await #expect(throws: ControlError.malformed(method: "containerManager.Processes", detail: #"not a JSON object: "??garbage""#)) {
            try await SandboxControl(socketPath: garbage.path, loop: loop).processes("c1", timeout: .seconds(5))
        }
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            _ = try await SandboxControl(socketPath: dir.file("none.sock"), loop: loop).processes("c1", timeout: .seconds(5))
            Issue.record("a missing socket answered")
        } catch {
            guard case .unreachable(let method, let path, let detail) = error else { throw error }
            #expect(method == "containerManager.Processes" && path == dir.file("none.sock") && detail.contains("No such file"))
        }
    }
}

