import LinuxSys

/// A spec's `process.oomScoreAdj` that the shim may not set. Lowering an oom_score_adj below
/// the process's own needs CAP_SYS_RESOURCE; runsc start applies the spec's value to the
/// sandbox and gofer and fails the pod when the write is refused (a shim run without
/// CAP_SYS_RESOURCE, e.g. in a user-namespaced or capability-dropped containerd). CRI's
/// `restrict_oom_score_adj` clamps the same way, but only for CRI pods and only if set: the
/// shim clamps every spec it creates with to its own score and says so, instead of failing.
enum OOMScoreClamp {
    /// What to raise `requested` to, or nil when the shim may set it as is.
    static func floor(requested: Int, own: Int, mayLower: Bool) -> Int? {
        requested < own && !mayLower ? own : nil
    }

    /// The spec's bytes with the number of its first `"oomScoreAdj": <n>` replaced by `value`;
    /// nil when there is none. The caller decodes the result to confirm it is the process's.
    static func rewrite(_ spec: [UInt8], to value: Int) -> [UInt8]? {
        let key = Array("\"oomScoreAdj\"".utf8)
        var index = 0
        while index + key.count <= spec.count {
            guard spec[index..<(index + key.count)].elementsEqual(key) else {
                index += 1
                continue
            }
            var cursor = index + key.count
            func skipSpace() { while cursor < spec.count && [0x20, 0x09, 0x0a, 0x0d].contains(spec[cursor]) { cursor += 1 } }
            skipSpace()
            guard cursor < spec.count, spec[cursor] == UInt8(ascii: ":") else {
                index += 1
                continue
            }
            cursor += 1
            skipSpace()
            let start = cursor
            if cursor < spec.count && spec[cursor] == UInt8(ascii: "-") { cursor += 1 }
            let digits = cursor
            while cursor < spec.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(spec[cursor]) { cursor += 1 }
            guard cursor > digits else {
                index += 1
                continue
            }
            return Array(spec[..<start]) + Array("\(value)".utf8) + Array(spec[cursor...])
        }
        return nil
    }

    /// Clamps the bundle's config.json in place when needed; returns what to log, or nil.
    static func apply(bundle: String, spec: OCISpec) throws(ShimError) -> String? {
        guard let requested = spec.process?.oomScoreAdj, let own = ProcessIdentity.oomScoreAdj,
            let floor = floor(
                requested: requested, own: own,
                mayLower: ProcessIdentity.hasEffectiveCapability(ProcessIdentity.capSysResource))
        else { return nil }
        let path = bundle + "/config.json"
        guard let bytes = FileDescriptor.readAll(path, limit: 16 << 20), let rewritten = rewrite(bytes, to: floor),
            (try? OCISpec.decode(rewritten, path: path))?.process?.oomScoreAdj == floor
        else {
            throw ShimError(
                .failedPrecondition,
                "\(path): oomScoreAdj \(requested) is below the shim's own \(own) and the shim lacks CAP_SYS_RESOURCE, and the spec could not be clamped")
        }
        do throws(Errno) {
            try Files.write(path, String(decoding: rewritten, as: UTF8.self))
        } catch {
            throw ShimError(.internal, "\(path): clamping oomScoreAdj: \(error)")
        }
        return "oomScoreAdj \(requested) clamped to \(floor): the shim lacks CAP_SYS_RESOURCE to go below its own"
    }
}
