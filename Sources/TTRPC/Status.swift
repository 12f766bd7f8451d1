/// gRPC status codes, which ttrpc carries in `Response.status.code`
/// (google.golang.org/grpc/codes; containerd's errdefs map onto them).
public enum StatusCode: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    public var description: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internal: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        }
    }
}

/// A status as it travels on the wire: what a server answers and what a client receives.
public struct TTRPCStatus: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ttrpc status \(code): \(message)" }
}

/// Errors that know their wire status. The shim's `ShimError` conforms; the server asks
/// this of every error a handler throws, in one place (`TTRPCStatus.from(_:)`).
public protocol TTRPCStatusConvertible: Error {
    var ttrpcStatus: TTRPCStatus { get }
}

extension TTRPCStatus: TTRPCStatusConvertible {
    public var ttrpcStatus: TTRPCStatus { self }
}

extension TTRPCStatus {
    /// The single mapping from a thrown error to a wire status.
    public static func from(_ error: any Error) -> TTRPCStatus {
        if let convertible = error as? any TTRPCStatusConvertible {
            return convertible.ttrpcStatus
        }
        if error is CancellationError {
            return TTRPCStatus(.cancelled, "request cancelled")
        }
        return TTRPCStatus(.unknown, String(describing: error))
    }
}
