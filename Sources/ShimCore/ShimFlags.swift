/// The command line containerd gives a runtime v2 shim (reference/shim-contract.md §1.2–1.4):
/// Go-style single-dash flags, then the action (`start`, `delete`) or none for the server.
public struct ShimFlags: Equatable, Sendable {
    public var namespace = ""
    public var id = ""
    /// containerd's gRPC address (used only to derive the socket name, as containerd's shims do).
    public var address = ""
    public var publishBinary = ""
    public var bundle = ""
    public var socket = ""
    public var debug = false
    public var version = false
    /// `-info`: print the RuntimeInfo protobuf and exit (containerd 2.x asks every runtime).
    public var info = false
    public var action: String?

    public init() {}

    public struct UsageError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static func parse(_ arguments: [String]) throws(UsageError) -> ShimFlags {
        var flags = ShimFlags()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-") else {
                guard flags.action == nil else { throw UsageError(description: "unexpected argument \"\(argument)\" after action \"\(flags.action!)\"") }
                flags.action = argument
                continue
            }
            var name = String(argument.drop(while: { $0 == "-" }))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            func value() throws(UsageError) -> String {
                if let inlineValue { return inlineValue }
                guard index < arguments.count else { throw UsageError(description: "flag -\(name) needs a value") }
                index += 1
                return arguments[index - 1]
            }
            switch name {
            case "namespace": flags.namespace = try value()
            case "id": flags.id = try value()
            case "address": flags.address = try value()
            case "publish-binary": flags.publishBinary = try value()
            case "bundle": flags.bundle = try value()
            case "socket": flags.socket = try value()
            case "debug": flags.debug = inlineValue.map { $0 != "false" } ?? true
            case "v", "version": flags.version = true
            case "info": flags.info = inlineValue.map { $0 != "false" } ?? true
            default: throw UsageError(description: "unknown flag -\(name)")
            }
        }
        return flags
    }

    /// The arguments the server child is started with (the same flags, no action).
    var serverArguments: [String] {
        var arguments = ["-namespace", namespace, "-id", id, "-address", address]
        if !publishBinary.isEmpty { arguments += ["-publish-binary", publishBinary] }
        if debug { arguments.append("-debug") }
        return arguments
    }
}
