import Testing
@testable import Config

@Suite struct ConfigTests {
    static let packageRoot = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/")).prefixedWithSlash

    @Test func emptyFileGivesDefaults() throws {
        #expect(try WardenConfig.parse("", file: "w.toml") == WardenConfig())
    }

    /// The documented example is the defaults plus network = "sandbox" and oci-seccomp: docs and
    /// code agree.
    @Test func shippedExampleMatchesTheDefaults() throws {
        let path = Self.packageRoot + "/shim-config/warden.toml"
        let config = try WardenConfig.load(path: path) { readFile($0) }
        var expected = WardenConfig()
        expected.runscFlags = [.init(key: "network", value: "sandbox"), .init(key: "oci-seccomp", value: "true")]
        #expect(config == expected)
    }

    @Test func readsEveryKey() throws {
        let config = try WardenConfig.parse(
            """
            runsc = "/opt/runsc"   # comment after a value
            root = '/run/w'
            log_level = "debug"
            [deadlines]
            runsc_call_timeout = "1.5s"
            create_timeout = "2m"
            kill_grace = "250ms"
            stop_deadline = "3s"
            delete_deadline = "4s"
            shutdown_deadline = "1s"
            netns_release = "delete"
            [runsc_config]
            network = "none"
            debug = true
            "debug-log" = "/tmp/runsc/%ID%/"
            watchdog-action = "panic"
            num-network-channels = 2
            [seccomp]
            mode = "log"
            [sandbox]
            pause_rootfs = "/opt/warden/pause"
            """, file: "w.toml")
        #expect(config.runsc == "/opt/runsc")
        #expect(config.root == "/run/w")
        #expect(config.logLevel == .debug)
        #expect(config.deadlines.runscCallTimeout == .milliseconds(1500))
        #expect(config.deadlines.createTimeout == .seconds(120))
        #expect(config.deadlines.killGrace == .milliseconds(250))
        #expect(config.deadlines.stopDeadline == .seconds(3))
        #expect(config.deadlines.deleteDeadline == .seconds(4))
        #expect(config.deadlines.shutdownDeadline == .seconds(1))
        #expect(config.netnsRelease == .delete)
        #expect(config.seccompMode == .log)
        #expect(config.pauseRootfs == "/opt/warden/pause")
        #expect(config.runscFlags == [
            .init(key: "network", value: "none"), .init(key: "debug", value: "true"),
            .init(key: "debug-log", value: "/tmp/runsc/%ID%/"), .init(key: "watchdog-action", value: "panic"),
            .init(key: "num-network-channels", value: "2"),
        ])
    }

    @Test(arguments: [
        ("stop_deadlin = \"1s\"", "w.toml:1: unknown key stop_deadlin"),
        ("[deadlines]\nstop_deadlin = \"1s\"", "w.toml:2: unknown key deadlines.stop_deadlin"),
        ("[deadline]\nkill_grace = \"1s\"", "w.toml:2: unknown key deadline.kill_grace"),
        ("[deadlines]\nkill_grace = 2", "w.toml:2: deadlines.kill_grace: expected a string, found an integer"),
        ("[deadlines]\nkill_grace = \"2 seconds\"", "w.toml:2: deadlines.kill_grace: \"2 seconds\" is not a duration (examples: \"500ms\", \"5s\", \"1m\")"),
        ("[deadlines]\nkill_grace = \"0s\"", "w.toml:2: deadlines.kill_grace: \"0s\" is out of range (more than 0, at most 1h)"),
        ("[deadlines]\nnetns_release = \"up\"", "w.toml:2: deadlines.netns_release: \"up\" is not one of down, delete, off"),
        ("log_level = \"loud\"", "w.toml:1: log_level: \"loud\" is not one of trace, debug, info, warn, error"),
        ("runsc = \"runsc\"", "w.toml:1: runsc: expected an absolute path, found \"runsc\""),
        ("[sandbox]\npause_rootfs = \"pause\"", "w.toml:2: sandbox.pause_rootfs: expected an absolute path, found \"pause\""),
        ("runsc = \"/a\"\nrunsc = \"/b\"", "w.toml:2: key runsc already set on line 1"),
        ("[seccomp]\n[seccomp]", "w.toml:2: table [seccomp] defined twice"),
        ("[seccomp]\nmode = \"strict\"", "w.toml:2: seccomp.mode: \"strict\" is not one of off, log, enforce"),
        ("runsc = \"/usr/bin/runsc", "w.toml:1: unterminated string"),
        ("runsc = [\"/a\"]", "w.toml:1: unsupported value [\"/a\"] (use a string, integer, float or boolean)"),
        ("just some words", "w.toml:1: expected key = value, found just some words"),
        ("[runsc_config]\nroot = \"/x\"", "w.toml:2: runsc_config.root: set by Warden itself; use the top-level key instead"),
        ("[runsc_config]\npanic-log = \"/x\"", "w.toml:2: runsc_config.panic-log: set by Warden itself: each sandbox's crash output goes to <root>/shim/<namespace>-<pod>/<id>.panic, where the shim reads its crash reason"),
        ("a.b = 1", "w.toml:1: unsupported key a.b (dotted keys are not supported)"),
        ("[[servers]]", "w.toml:1: unsupported table header [[servers]]"),
    ])
    func badInputIsNamed(text: String, expected: String) {
        do {
            _ = try WardenConfig.parse(text, file: "w.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func unreadableFileIsNamed() {
        do {
            _ = try WardenConfig.load(path: "/nonexistent/warden.toml") { _ in nil }
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.description == "/nonexistent/warden.toml: cannot read the file")
        }
    }

    @Test(arguments: [("5s", Duration.seconds(5)), ("500ms", .milliseconds(500)), ("1m", .seconds(60)), ("1.5h", .seconds(5400)), ("250us", .microseconds(250))])
    func durations(text: String, expected: Duration) {
        #expect(parseDuration(text) == expected)
    }
}

extension String {
    fileprivate var prefixedWithSlash: String { hasPrefix("/") ? self : "/" + self }
}

import Glibc

func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return bytes
}
