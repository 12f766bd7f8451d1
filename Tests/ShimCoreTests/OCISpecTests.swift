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

/// The oomScoreAdj clamp's pure parts: when it applies, and the spec rewrite that touches
/// only the number (the integration test OOMScoreAdjTests runs it through containerd).
@Suite struct OOMScoreClampTests {
    @Test func onlyAScoreBelowTheShimsOwnWithoutTheCapabilityIsRaised() {
        #expect(OOMScoreClamp.floor(requested: -998, own: 0, mayLower: false) == 0)
        #expect(OOMScoreClamp.floor(requested: -998, own: -500, mayLower: false) == -500)
        #expect(OOMScoreClamp.floor(requested: -998, own: 0, mayLower: true) == nil)
        #expect(OOMScoreClamp.floor(requested: 0, own: 0, mayLower: false) == nil)
        #expect(OOMScoreClamp.floor(requested: 1000, own: 0, mayLower: false) == nil)
    }

    @Test func theRewriteReplacesTheProcessScoreAndNothingElse() throws {
        let spec = #"{"annotations":{"note":"\"oomScoreAdj\": is text here"},"process":{"args":["sh"],"oomScoreAdj" :  -998,"cwd":"/"}}"#
        let rewritten = try #require(OOMScoreClamp.rewrite(Array(spec.utf8), to: 0))
        #expect(String(decoding: rewritten, as: UTF8.self)
            == #"{"annotations":{"note":"\"oomScoreAdj\": is text here"},"process":{"args":["sh"],"oomScoreAdj" :  0,"cwd":"/"}}"#)
        let decoded = try OCISpec.decode(rewritten, path: "config.json")
        #expect(decoded.process?.oomScoreAdj == 0)
        #expect(decoded.process?.args == ["sh"])
        #expect(OOMScoreClamp.rewrite(Array(#"{"process":{"args":["sh"]}}"#.utf8), to: 0) == nil)
        #expect(OOMScoreClamp.rewrite(Array(#"{"process":{"oomScoreAdj":"-5"}}"#.utf8), to: 0) == nil)
    }
}
