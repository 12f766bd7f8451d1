import Testing

@testable import ShimCore

/// What Delete decides from the spec: poststop hooks are run by `runsc delete` only, so a
/// sandbox whose spec has them is never deleted by removing runsc's state directly.
@Suite struct OCISpecTests {
    @Test func poststopHooksAreSeen() throws {
        let withHooks = try OCISpec.decode(Array(#"""
            {"ociVersion":"1.0.2","hooks":{"poststop":[{"path":"/usr/bin/cleanup","args":["cleanup"]}]}}
            """#.utf8), path: "config.json")
        #expect(withHooks.hasPoststopHooks)
        let otherHooks = try OCISpec.decode(Array(#"""
            {"ociVersion":"1.0.2","hooks":{"prestart":[{"path":"/usr/bin/setup"}],"poststop":[]}}
            """#.utf8), path: "config.json")
        #expect(!otherHooks.hasPoststopHooks)
        let none = try OCISpec.decode(Array(#"{"ociVersion":"1.0.2"}"#.utf8), path: "config.json")
        #expect(!none.hasPoststopHooks)
    }
}
