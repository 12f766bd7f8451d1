import Foundation
import Testing
import WardenTestSupport

/// Where the interop peers are, and whether their absence is a failure.
/// scripts/test.sh builds the Go fixture, installs containerd and sets WARDEN_INTEROP=1,
/// so in CI a missing peer fails the run instead of silently skipping.
enum Interop {
    static let required = ProcessInfo.processInfo.environment["WARDEN_INTEROP"] == "1"

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let goFixture = ProcessInfo.processInfo.environment["WARDEN_GO_TTRPC_FIXTURE"]
        ?? packageRoot + "/tests/fixtures/bin/ttrpc-interop"

    static func executable(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

    static var goFixtureAvailable: Bool { required || executable(goFixture) }
    static var containerdAvailable: Bool {
        required || (executable(ContainerdUnderTest.containerd) && executable(ContainerdUnderTest.ctr) && getuid() == 0)
    }
}
