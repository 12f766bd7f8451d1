import Runsc
import TTRPC

/// The one error type of the shim's core. Its codes mirror containerd's errdefs, and it is
/// turned into a ttrpc status in exactly one place: `ttrpcStatus` below, which the ttrpc
/// server consults for every error a handler throws.
public struct ShimError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, CaseIterable {
        case notFound
        case alreadyExists
        case failedPrecondition
        case invalidArgument
        case unimplemented
        case deadlineExceeded
        case unavailable
        case `internal`
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension ShimError: TTRPCStatusConvertible {
    /// errdefs → gRPC code, as containerd's errgrpc.ToGRPC does; containerd maps the code
    /// back (e.g. NotFound lets `ctr task rm` of a gone task succeed). Exhaustive on
    /// purpose: nothing falls through to Unknown.
    public var ttrpcStatus: TTRPCStatus {
        let status: StatusCode =
            switch code {
            case .notFound: .notFound
            case .alreadyExists: .alreadyExists
            case .failedPrecondition: .failedPrecondition
            case .invalidArgument: .invalidArgument
            case .unimplemented: .unimplemented
            case .deadlineExceeded: .deadlineExceeded
            case .unavailable: .unavailable
            case .internal: .internal
            }
        return TTRPCStatus(status, message)
    }
}

extension ShimError {
    /// runsc's classified failure as the shim's error (at the edge it becomes a ttrpc status).
    init(from error: RunscError, _ what: String) {
        switch error {
        case .notFound: self.init(.notFound, "\(what): \(error)")
        case .alreadyStopped: self.init(.failedPrecondition, "\(what): \(error)")
        case .timedOut: self.init(.deadlineExceeded, "\(what): \(error)")
        case .cancelled: self.init(.deadlineExceeded, "\(what): \(error)")
        case .commandFailed, .invalidOutput, .spawnFailed: self.init(.internal, "\(what): \(error)")
        }
    }
}
