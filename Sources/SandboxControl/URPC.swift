// gVisor's urpc as runsc speaks it to a sandbox's control server (pkg/urpc/urpc.go): one
// JSON object per call, `{"method":"containerManager.Wait","arg":…}`, answered by one
// `{"success":…,"err":"…","result":…}`, with no length prefix or delimiter: a reader knows
// an answer is complete when its outermost object closes. Files would ride on the first
// byte as SCM_RIGHTS; no call Warden makes passes any.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What went wrong with a control call, naming the call and what was wrong.
public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The socket could not be reached (no such file, refused, a backlog that is full).
    case unreachable(method: String, path: String, detail: String)
    /// The server closed the connection (or it failed) before a whole answer came.
    case closed(method: String, received: Int)
    /// The answer is not what urpc answers (not JSON, not an object, the wrong shape or type).
    case malformed(method: String, detail: String)
    /// The server answered with an error: runsc's own text (`err`).
    case refused(method: String, message: String)
    /// No answer within the deadline; the connection was closed.
    case timedOut(method: String, after: Duration)
    /// The caller gave up; the connection was closed.
    case cancelled(method: String)

    public var description: String {
        switch self {
        case .unreachable(let method, let path, let detail): "control \(method): cannot connect to \(path): \(detail)"
        case .closed(let method, let received): "control \(method): connection closed after \(received) bytes of the answer"
        case .malformed(let method, let detail): "control \(method): malformed answer: \(detail)"
        case .refused(let method, let message): "control \(method): \(message)"
        case .timedOut(let method, let after): "control \(method): no answer within \(after)"
        case .cancelled(let method): "control \(method): abandoned by its caller"
        }
    }

    /// The server's own answer (an error runsc would have printed), not a channel failure.
    public var isAnswer: Bool { if case .refused = self { true } else { false } }
}

public enum URPC {
    /// The largest answer read (a process list or stats are a few KiB).
    public static let answerLimit = 1 << 20

    private struct Call<Argument: Encodable>: Encodable {
        var method: String
        var arg: Argument
    }

    /// The bytes of one call.
    public static func request<Argument: Encodable>(method: String, argument: Argument) -> [UInt8] {
        // Encoding a String/Int/struct of them cannot fail.
        (try? Array(JSONEncoder().encode(Call(method: method, arg: argument)))) ?? []
    }

    /// Where the first JSON object in `bytes` ends (the index after its closing brace), nil
    /// while it is incomplete. Throws for bytes that cannot begin or continue one.
    public static func endOfObject(_ bytes: some Collection<UInt8>, method: String) throws(ControlError) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        var started = false
        for (offset, byte) in bytes.enumerated() {
            if !started {
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
                case UInt8(ascii: "{"):
                    started = true
                    depth = 1
                    continue
                default:
                    throw .malformed(method: method, detail: "not a JSON object: \(preview(bytes))")
                }
            }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return offset + 1 }
                if depth < 0 { throw .malformed(method: method, detail: "unbalanced brackets: \(preview(bytes))") }
            default: break
            }
        }
        if bytes.count > answerLimit { throw .malformed(method: method, detail: "no whole answer in \(bytes.count) bytes") }
        return nil
    }

    private struct Answer<Result: Decodable>: Decodable {
        var success: Bool
        var err: String?
        var result: Result?
    }

    /// The result of a complete answer object; `refused` with the server's text when it
    /// failed. A nil result (`"result":null`) is given as nil: the caller decides.
    public static func result<Result: Decodable>(_ answer: [UInt8], as type: Result.Type, method: String) throws(ControlError) -> Result? {
        let decoded: Answer<Result>
        do {
            decoded = try JSONDecoder().decode(Answer<Result>.self, from: Data(answer))
        } catch {
            throw .malformed(method: method, detail: "\(Self.describe(error)) in \(preview(answer))")
        }
        guard decoded.success else {
            throw .refused(method: method, message: decoded.err.flatMap { $0.isEmpty ? nil : $0 } ?? "failed without a message")
        }
        return decoded.result
    }

    static func preview(_ bytes: some Collection<UInt8>) -> String {
        let text = String(bytes.prefix(120).map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "?" })
        return "\"\(text)\"" + (bytes.count > 120 ? "…" : "")
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context):
            "expected \(type) at \(path(context))"
        case DecodingError.keyNotFound(let key, let context): "missing \"\(key.stringValue)\" at \(path(context))"
        case DecodingError.dataCorrupted(let context): "not JSON (\(context.debugDescription))"
        default: "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "the top" : context.codingPath.map(\.stringValue).joined(separator: ".")
    }
}
