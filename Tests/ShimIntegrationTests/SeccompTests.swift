import ContainerdAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing
import WardenTestSupport

/// The serving shim confines itself (issue 13): with the default `enforce` the filter is on
/// (`Seccomp: 2`), a syscall off the list fails with EPERM and reaches the kernel log, the
/// shim goes on serving, and every process still comes from the unfiltered spawn helper.
/// `log` lets the call through and logs it; `off` loads no filter. The probe is a test-only
/// ttrpc service the shim registers when WARDEN_SECCOMP_PROBE is set.
@Suite(.serialized) struct SeccompTests {
    static let deadlines = "stop_deadline = \"4s\"\nkill_grace = \"1s\""

    @Test(arguments: [
        (RuntimeKind.fake, "enforce"), (RuntimeKind.real, "enforce"), (RuntimeKind.fake, "log"), (RuntimeKind.fake, "off"),
    ])
    func aRefusedSyscallFailsWhileTheShimServesOn(_ runtime: RuntimeKind, _ mode: String) async throws {
        guard ShimHarness.available(runtime) else { return }
        // mode "enforce" is the default: no [seccomp] table for it.
        let extra = mode == "enforce" ? "" : "[seccomp]\nmode = \"\(mode)\""
        try await ShimHarness.run(
            runtime, limit: .seconds(90), "seccomp \(mode) with \(runtime) runsc", deadlines: Self.deadlines, extraConfig: extra,
            shimEnvironment: ["WARDEN_SECCOMP_PROBE": "1"]
        ) { h in
            let run = try await h.ctr(["run", "-d"] + h.runtimeFlags + [ShimHarness.image, "c1", "sleep", "1000"])
            #expect(run.status == 0, "run: \(run.output)")
            try await h.waitForTask("c1", status: "RUNNING")
            let shims = h.shimProcesses()
            #expect(shims.count == 1, "\(shims)")
            let shimPid = Int32(shims.first?.split(separator: ":").first ?? "") ?? 0
            let helpers = h.spawnHelpers()
            #expect(helpers.count == 1, "\(helpers)")
            let helperPid = Int32(helpers.first?.split(separator: ":").first ?? "") ?? 0
            #expect(seccompField(shimPid) == (mode == "off" ? "0" : "2"), "the serving shim's filter")
            #expect(seccompField(helperPid) == "0", "the spawn helper runs unfiltered")

            let sockets = try FileManager.default.contentsOfDirectory(atPath: h.containerd.dir.file("state/s"))
            #expect(sockets.count == 1, "\(sockets)")
            let client = try TTRPCClient.connect(path: h.containerd.dir.file("state/s/") + (sockets.first ?? ""))
            defer { client.close() }
            let probe: Google_Protobuf_StringValue = try await client.call(
                service: "warden.test.v1.SeccompProbe", method: "Probe", request: Google_Protobuf_Empty(),
                timeout: .seconds(5))
            switch mode {
            case "enforce": #expect(probe.value == "ptrace=EPERM exec=EPERM seccomp=2")
            case "log": #expect(probe.value == "ptrace=ESRCH exec=ok seccomp=2")
            default: #expect(probe.value == "ptrace=ESRCH exec=ok seccomp=0")
            }
            if mode != "off" {
                // The kernel rate-limits audit lines to its log: probe again until one shows.
                var logged: [String] = []
                for _ in 0..<10 where logged.isEmpty {
                    logged = try await kernelLogLines(pid: shimPid, syscall: 101)  // ptrace on x86_64
                    if logged.isEmpty {
                        try await Task.sleep(for: .milliseconds(300))
                        let _: Google_Protobuf_StringValue = try await client.call(
                            service: "warden.test.v1.SeccompProbe", method: "Probe", request: Google_Protobuf_Empty(),
                            timeout: .seconds(5))
                    }
                }
                #expect(!logged.isEmpty, "the kernel logged the shim's ptrace (audit type 1326)")
            }

            // It still answers containerd within 1 s, and the pod still works: an exec
            // (a runsc call through the helper) and a stop.
            var state = Containerd_Task_V2_StateRequest()
            state.id = "c1"
            let began = ContinuousClock.now
            let answered: Containerd_Task_V2_StateResponse = try await client.call(
                service: "containerd.task.v2.Task", method: "State", request: state, timeout: .seconds(1),
                metadata: [("containerd-namespace-ttrpc", h.namespace)])
            #expect(ContinuousClock.now - began < .seconds(1))
            #expect(answered.status == .running)
            let exec = try await h.ctr(["task", "exec", "--exec-id", "e1", "c1", "echo", "confined"])
            #expect(exec.status == 0 && exec.output.contains("confined"), "exec under the filter: \(exec.output)")
            #expect(try await h.ctr(["task", "kill", "-s", "SIGKILL", "c1"]).status == 0)
            try await h.waitForTask("c1", status: "STOPPED")
            #expect(try await h.ctr(["task", "rm", "c1"]).status == 0)
            #expect(try await h.ctr(["container", "rm", "c1"]).status == 0)
        }
    }

    /// `Seccomp:` of /proc/PID/status ("0" none, "2" filter).
    func seccompField(_ pid: Int32) -> String? {
        guard let status = procText("/proc/\(pid)/status") else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }?
            .dropFirst("Seccomp:".count).trimmingCharacters(in: .whitespaces)
    }

    /// Seccomp audit records (type 1326) in the kernel log for `pid` and syscall number.
    func kernelLogLines(pid: Int32, syscall: Int) async throws -> [String] {
        let dmesg = try await runCommand("/usr/bin/dmesg", [], timeout: .seconds(10))
        return dmesg.output.split(separator: "\n").map(String.init).filter {
            $0.contains("type=1326") && $0.contains(" pid=\(pid) ") && $0.contains(" syscall=\(syscall) ")
        }
    }
}
