// Compiled only with WARDEN_TEST_HOOKS (debug builds): the shipped shim carries no test service.
#if WARDEN_TEST_HOOKS
import LinuxSys
import Seccomp
import SwiftProtobuf
import TTRPC

/// A test-only service, registered only when the shim's environment has
/// WARDEN_SECCOMP_PROBE set (the tests set it on their private containerd): from a serving
/// handler it tries syscalls the filter refuses and answers what happened, so a test can
/// show a refusal while the shim goes on serving.
enum SeccompProbe {
    static let variable = "WARDEN_SECCOMP_PROBE"
    static let service = "warden.test.v1.SeccompProbe"
    static let method = "Probe"

    static func register(into registry: inout ServiceRegistry, log: ShimLog) {
        registry.register(service: service, method: method) {
            (_: RequestContext, _: Google_Protobuf_Empty) async throws -> Google_Protobuf_StringValue in
            let answer = [
                "ptrace=\(RefusalProbe.ptrace(pid: ProcessIdentity.pid))",
                "exec=\(RefusalProbe.exec(path: "/bin/true"))",
                "seccomp=\(ShimSyscalls.currentMode)",
            ].joined(separator: " ")
            log.info("seccomp probe: \(answer)")
            return Google_Protobuf_StringValue(answer)
        }
    }
}
#endif
