// /etc/hostname, /etc/hosts and /etc/resolv.conf of a pod containerd hands over through the
// Sandbox API (`sandboxer = "shim"`). Under `podsandbox` containerd's CRI writes them from the
// pod's CRI config and bind-mounts them into every container; with a shim sandboxer it leaves
// them to the sandbox controller and mounts them only if they exist in its own directory, which
// nothing writes (containerd internal/cri/server/container_create.go, "could be delegated to
// remote sandbox controller"): a container then had no /etc/resolv.conf at all. Warden writes
// them as containerd's podsandbox controller does (internal/cri/server/podsandbox/
// sandbox_run_linux.go, setupSandboxFiles) and adds the mounts to each application container.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ContainerdAPI
import LinuxSys

struct PodFiles: Sendable {
    /// Where the pod's files are (in the shim's scratch directory; they go with it).
    let directory: String

    static let hostname = "/etc/hostname"
    static let hosts = "/etc/hosts"
    static let resolvConf = "/etc/resolv.conf"

    /// The files' contents: the pod's hostname (the node's when it has none), the node's hosts
    /// file, and a resolv.conf from the pod's DNS config (the node's when it has none).
    static func contents(
        pod: Runtime_V1_PodSandboxConfig, nodeHostname: String, nodeHosts: [UInt8], nodeResolvConf: [UInt8]
    ) -> [(destination: String, bytes: [UInt8])] {
        let hostname = pod.hostname.isEmpty ? nodeHostname : pod.hostname
        var resolv = nodeResolvConf
        if pod.hasDnsConfig {
            let dns = pod.dnsConfig
            var text = ""
            if !dns.searches.isEmpty { text += "search \(dns.searches.joined(separator: " "))\n" }
            for server in dns.servers { text += "nameserver \(server)\n" }
            if !dns.options.isEmpty { text += "options \(dns.options.joined(separator: " "))\n" }
            resolv = Array(text.utf8)
        }
        return [(Self.hostname, Array((hostname + "\n").utf8)), (Self.hosts, nodeHosts), (Self.resolvConf, resolv)]
    }

    /// Writes the pod's files into `directory` (made if needed).
    static func write(pod: Runtime_V1_PodSandboxConfig, directory: String) throws(ShimError) -> PodFiles {
        let nodeHostname = FileDescriptor.readText("/proc/sys/kernel/hostname")?.trimmingWhitespace ?? "localhost"
        let files = contents(
            pod: pod, nodeHostname: nodeHostname, nodeHosts: FileDescriptor.readAll("/etc/hosts") ?? [],
            nodeResolvConf: FileDescriptor.readAll("/etc/resolv.conf") ?? [])
        do throws(Errno) {
            try Directories.make(directory)
            for (destination, bytes) in files {
                try Files.write(directory + "/" + fileName(destination), bytes, mode: 0o644)
            }
        } catch {
            throw ShimError(.internal, "the pod's \(files.map(\.destination).joined(separator: ", ")) in \(directory): \(error)")
        }
        return PodFiles(directory: directory)
    }

    private static func fileName(_ destination: String) -> String {
        String(destination.split(separator: "/").last ?? "")
    }

    struct Mount: Encodable {
        var destination: String
        var type = "bind"
        var source: String
        var options: [String]
    }

    /// Adds a bind mount of each file to the container's spec (bundle config.json), unless the
    /// spec already mounts something there (a CRI mount of the user's wins, as in containerd).
    /// Read-only when the container's rootfs is. Returns the destinations added.
    func addMounts(bundle: String, spec: OCISpec) throws(ShimError) -> [String] {
        let path = bundle + "/config.json"
        let taken = Set((spec.mounts ?? []).map(\.destination))
        let options = ["rbind", "rprivate", spec.root?.readonly == true ? "ro" : "rw"]
        let mounts = [Self.hostname, Self.hosts, Self.resolvConf].filter { !taken.contains($0) }.map {
            Mount(destination: $0, source: directory + "/" + Self.fileName($0), options: options)
        }
        guard !mounts.isEmpty else { return [] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let bytes = FileDescriptor.readAll(path, limit: 16 << 20),
            let encoded = try? mounts.map({ Array(try encoder.encode($0)) }),
            let rewritten = Self.appendingMounts(encoded, to: bytes)
        else { throw ShimError(.invalidArgument, "\(path): no top-level \"mounts\" array to add the pod's files to") }
        let check = try OCISpec.decode(rewritten, path: path)
        guard Set((check.mounts ?? []).map(\.destination)).isSuperset(of: mounts.map(\.destination)) else {
            throw ShimError(.internal, "\(path): the pod's files were not added as mounts")
        }
        do throws(Errno) {
            try Files.write(path, rewritten, mode: 0o600)
        } catch {
            throw ShimError(.internal, "\(path): cannot write the spec with the pod's files: \(error)")
        }
        return mounts.map(\.destination)
    }

    /// `spec` with `mounts` (each an encoded JSON object) appended to its top-level "mounts"
    /// array, or in a new one when it has none (the key is optional in OCI), the rest byte for
    /// byte as it was; nil when "mounts" is there but no array, or the spec is cut short. A
    /// small scanner rather than a JSON round trip, which would reorder and reformat runsc's input.
    static func appendingMounts(_ mounts: [[UInt8]], to spec: [UInt8]) -> [UInt8]? {
        let joined = Array(mounts.joined(separator: [UInt8(ascii: ",")]))
        var depth = 0
        var index = 0
        var objectStart: Int?
        func skipSpace(_ from: Int) -> Int {
            var at = from
            while at < spec.count, [0x20, 0x09, 0x0a, 0x0d].contains(spec[at]) { at += 1 }
            return at
        }
        while index < spec.count {
            let byte = spec[index]
            if byte == UInt8(ascii: "\"") {
                let start = index + 1
                index += 1
                while index < spec.count, spec[index] != UInt8(ascii: "\"") {
                    index += spec[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard index < spec.count else { return nil }
                let key = spec[start..<index]
                index += 1
                let colon = skipSpace(index)
                guard depth == 1, colon < spec.count, spec[colon] == UInt8(ascii: ":"), key.elementsEqual("mounts".utf8)
                else { continue }
                let open = skipSpace(colon + 1)
                guard open < spec.count, spec[open] == UInt8(ascii: "[") else { return nil }
                let first = skipSpace(open + 1)
                guard first < spec.count else { return nil }
                let insertion = spec[first] == UInt8(ascii: "]") ? joined : joined + [UInt8(ascii: ",")]
                return Array(spec[...open]) + insertion + Array(spec[(open + 1)...])
            }
            if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                if depth == 0 && byte == UInt8(ascii: "{") { objectStart = index }
                depth += 1
            }
            if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                depth -= 1
                // The whole spec read and no top-level "mounts": a new array first in it.
                if depth == 0, let open = objectStart {
                    let empty = spec[skipSpace(open + 1)] == UInt8(ascii: "}")
                    let insertion = Array("\"mounts\":[".utf8) + joined + [UInt8(ascii: "]")] + (empty ? [] : [UInt8(ascii: ",")])
                    return Array(spec[...open]) + insertion + Array(spec[(open + 1)...])
                }
            }
            index += 1
        }
        return nil
    }
}
