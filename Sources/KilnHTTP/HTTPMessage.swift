import Foundation
import KilnCore

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// In order; a name may repeat.
    public var headers: [(name: String, value: String)]
    public var body: Data
    /// Overrides the client's limits for this request.
    public var connectTimeout: TimeInterval?
    public var timeout: TimeInterval?
    /// A transfer that receives and sends nothing for this long fails
    /// (`HTTPError.Failure.stalled`), through libcurl's low-speed limit of
    /// 1 byte a second over that time (CURLOPT_LOW_SPEED_LIMIT, _TIME).
    public var stallTimeout: TimeInterval? = nil
    /// The job's cancellation: a cancel (GitLab's SIGTERM) aborts the
    /// transfer, which then throws `CancelledBySignal`, so that the caller's
    /// clean-up runs before the stage ends.
    public var cancellation: Cancellation? = nil

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: Data = Data(),
        connectTimeout: TimeInterval? = nil, timeout: TimeInterval? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }
}

public struct HTTPResponse: Sendable {
    public let status: Int
    /// As received, in order, names as the server spelled them.
    public let headers: [(name: String, value: String)]
    public let body: Data

    /// The first header of that name, ignoring case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A request that did not get an answer: the URL (without credentials) and
/// what failed. A timeout is temporary (exit 75); anything else means the
/// service is unreachable (exit 69).
public struct HTTPError: ExitStatusProviding, CustomStringConvertible, Sendable {
    public enum Failure: Sendable, Equatable {
        case couldNotResolve
        case connectionRefused
        case connectionFailed
        case timedOut
        /// Nothing received or sent for the request's `stallTimeout`.
        case stalled(seconds: TimeInterval)
        case tls
        case dropped
        case other
    }

    public let failure: Failure
    /// The URL with any user name and password taken out.
    public let url: String
    public let method: String
    public let detail: String

    public var exitStatus: KilnExit {
        switch failure {
        case .timedOut, .stalled: .temporaryFailure
        default: .serviceUnavailable
        }
    }

    /// Whether sending again may work (every failure here is about the
    /// connection, not the request). A stalled transfer is not sent again
    /// within the job: it already waited its whole no-progress time, and
    /// exit 75 lets GitLab's `retry:` start the job afresh.
    public var isRetryable: Bool {
        switch failure {
        case .tls, .stalled: false
        default: true
        }
    }

    public var description: String { "\(method) \(url): \(detail)" }

    /// Takes user name and password out of a URL for messages.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.user != nil || components.password != nil else {
            return url
        }
        components.user = nil
        components.password = nil
        return components.string ?? "(a URL)"
    }
}
