// swift-tools-version:6.1
// Warden: a containerd runtime v2 shim for gVisor (runsc) that guarantees pods stop.
// Targets follow design.md §1: one concern each, dependencies pointing one way,
// syscalls only in LinuxSys/CLinuxSys.
import PackageDescription

let package = Package(
    name: "Warden",
    products: [
        .executable(name: "containerd-shim-warden-v2", targets: ["containerd-shim-warden-v2"]),
        .executable(name: "warden", targets: ["warden"]),
    ],
    dependencies: [
        // No default traits: BinaryDelimitedStreams imports all of Foundation (+ICU, ~7 MB PSS).
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0", traits: []),
        // Prometheus exposition (no Foundation): the shim's metrics textfile.
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        // The operator CLI's subcommands, help and completion (the `warden` binary only).
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // C wrappers for what Glibc's Swift module does not expose cleanly (ucred, pidfd, …).
        .target(
            name: "CLinuxSys",
            // clinux_test_ignore_signal (a test-only call) is compiled into debug builds only.
            cSettings: [.define("WARDEN_TEST_HOOKS", .when(configuration: .debug))]
        ),
        // The only Swift code that makes syscalls.
        .target(name: "LinuxSys", dependencies: ["CLinuxSys"]),
        // libseccomp (Debian libseccomp-dev), linked statically into the shim.
        .target(
            name: "CSeccomp",
            // The refusal probe (a test-only call) is compiled into debug builds only.
            cSettings: [.define("WARDEN_TEST_HOOKS", .when(configuration: .debug))],
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        // The shim's own allow-list filter and the call that loads it (design.md §6).
        .target(
            name: "Seccomp", dependencies: ["CSeccomp"],
            swiftSettings: [.define("WARDEN_TEST_HOOKS", .when(configuration: .debug))]
        ),
        // The parts of an OCI spec that the shim, doctor and fake-runsc all read.
        .target(name: "OCI"),
        // Names the shim and the node tools share: environment, files, containerd's bundle dirs.
        .target(name: "ShimLayout"),
        // withDeadline: the one race of an operation against a deadline, shared by ttrpc and runsc.
        .target(name: "Deadlines", dependencies: ["LinuxSys"]),
        .testTarget(name: "DeadlinesTests", dependencies: ["Deadlines", "WardenTestSupport"]),
        // ttrpc: frame codec, server, client. Knows nothing of containerd.
        .target(
            name: "TTRPC",
            dependencies: ["LinuxSys", "Deadlines", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/README.md"]
        ),
        // Generated from containerd's .proto files by scripts/generate-protos.sh; never hand-edited.
        .target(
            name: "ContainerdAPI",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/README.md"]
        ),
        // The only owner of wait: pidfds for every process of a pod, reaping, signals.
        .target(name: "Supervisor", dependencies: ["LinuxSys"]),
        // A pod's network namespace through rtnetlink: list links, set them down, flush
        // addresses, delete veths. Message encoding is pure and tested with fixed bytes.
        .target(name: "NetNS", dependencies: ["LinuxSys"]),
        .testTarget(name: "NetNSTests", dependencies: ["NetNS", "LinuxSys", "WardenTestSupport"]),
        // warden.toml: strict parsing, errors naming file, line and key.
        .target(name: "Config"),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        // Typed runsc CLI driver: every call under a deadline, errors classified.
        .target(name: "Runsc", dependencies: ["Supervisor", "LinuxSys", "Deadlines"]),
        .testTarget(name: "RunscTests", dependencies: ["Runsc", "Supervisor", "LinuxSys", "WardenTestSupport"]),
        .testTarget(name: "FakeRunscTests", dependencies: ["Runsc", "Supervisor", "LinuxSys", "WardenTestSupport"]),
        // A sandbox's control server spoken to directly (gVisor's urpc), beside runsc's CLI.
        .target(name: "SandboxControl", dependencies: ["LinuxSys", "Deadlines"]),
        .testTarget(name: "SandboxControlTests", dependencies: ["SandboxControl", "LinuxSys", "WardenTestSupport"]),
        // The shim's core: errors (mapped to ttrpc status in one place), later the task service.
        .target(
            name: "ShimCore",
            dependencies: [
                "TTRPC", "ContainerdAPI", "LinuxSys", "Supervisor", "Runsc", "Config", "Deadlines", "NetNS", "Seccomp", "OCI",
                "ShimLayout", "SandboxControl",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // Test-only delays (TestHooks.swift) exist in debug builds, never in the shipped one.
            swiftSettings: [.define("WARDEN_TEST_HOOKS", .when(configuration: .debug))]
        ),
        .executableTarget(name: "containerd-shim-warden-v2", dependencies: ["ShimCore", "LinuxSys"]),
        // Test double with runsc's CLI and process model (design.md §4), plus fault injection.
        .target(name: "FakeRunscCore", dependencies: ["LinuxSys", "NetNS", "OCI"]),
        .executableTarget(name: "fake-runsc", dependencies: ["FakeRunscCore", "LinuxSys"]),
        // What the operator CLI reads off a node: Warden shims and their metrics files, and
        // what stuck pods of any runtime left (doctor), and clearing it (sweep).
        .target(name: "WardenNode", dependencies: ["Config", "LinuxSys", "OCI", "ShimLayout"]),
        .testTarget(name: "WardenNodeTests", dependencies: ["WardenNode", "LinuxSys", "WardenTestSupport"]),
        // Operator CLI.
        .executableTarget(
            name: "warden",
            dependencies: ["Config", "LinuxSys", "ShimLayout", "WardenNode", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // The echo service both the interop tests and warden-ttrpc-echo serve (mirrors the Go fixture).
        .target(
            name: "TTRPCEchoService",
            dependencies: ["TTRPC", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tests/Tools/TTRPCEchoService"
        ),
        // A bare ttrpc server process, for measuring the server's idle footprint (scripts/bench.sh).
        .executableTarget(
            name: "warden-ttrpc-echo",
            dependencies: ["TTRPC", "TTRPCEchoService", "LinuxSys"],
            path: "Tests/Tools/warden-ttrpc-echo"
        ),
        // Runs Swift concurrency on the shim's executor in a process of its own (LinuxSysTests).
        .executableTarget(name: "executor-probe", dependencies: ["LinuxSys"], path: "Tests/Tools/executor-probe"),
        // Runs the Supervisor's orphan sweep in a process of its own (SupervisorTests drives it).
        .executableTarget(
            name: "supervisor-sweep-probe",
            dependencies: ["Supervisor", "LinuxSys"],
            path: "Tests/Tools/supervisor-sweep-probe"
        ),
        // Helpers shared by the test targets: timeouts, temp dirs, raw sockets, subprocesses.
        .target(
            name: "WardenTestSupport",
            dependencies: ["TTRPC", "LinuxSys", "Deadlines", "Supervisor", "TTRPCEchoService", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tests/WardenTestSupport"
        ),
        .testTarget(name: "LinuxSysTests", dependencies: ["LinuxSys", "WardenTestSupport"]),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor", "LinuxSys", "WardenTestSupport"]),
        .testTarget(name: "TTRPCTests", dependencies: ["TTRPC", "LinuxSys", "WardenTestSupport"]),
        .testTarget(
            name: "ShimCoreTests",
            dependencies: [
                "ShimCore", "TTRPC", "LinuxSys", "Supervisor", "WardenTestSupport", "ContainerdAPI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        // The shim through a private containerd and ctr, with real runsc and with fake-runsc.
        .testTarget(
            name: "ShimIntegrationTests",
            dependencies: ["WardenTestSupport", "TTRPC", "ContainerdAPI", "LinuxSys", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Interop with real peers (Go ttrpc fixtures, a private containerd). scripts/test.sh
        // builds the fixtures and sets WARDEN_INTEROP=1, which turns a missing peer into a failure.
        // The shim's front door as a fuzz target: frame decoder, ttrpc envelope, every Task
        // request decoder as registered (Tests/FuzzTests runs it; scripts/fuzz.sh under libFuzzer).
        .target(
            name: "FrontDoorFuzz",
            dependencies: [
                "ShimCore", "TTRPC", "ContainerdAPI", "LinuxSys", "Supervisor", "Runsc",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Tools/FrontDoorFuzz"
        ),
        .testTarget(name: "FuzzTests", dependencies: ["FrontDoorFuzz", "WardenTestSupport"]),
        .testTarget(
            name: "InteropTests",
            dependencies: [
                "TTRPC", "ContainerdAPI", "ShimCore", "WardenTestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)

// libFuzzer's entry point (no main: libFuzzer brings it), only when scripts/fuzz.sh asks, so
// an ordinary build never has to link it: WARDEN_FUZZ=1 swift build --sanitize=fuzzer.
if Context.environment["WARDEN_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "warden-fuzz", dependencies: ["FrontDoorFuzz"], path: "Tests/Tools/warden-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
