import KilnCore

/// An error AWS answered with, or a call whose outcome Kiln cannot know.
/// Keeps the service's code, message, HTTP status and request id.
public struct AWSError: ExitStatusProviding, CustomStringConvertible, Sendable, Equatable {
    public let service: String
    public let action: String
    public let code: String
    public let message: String
    public let httpStatus: Int
    public let requestID: String?

    public init(service: String, action: String, code: String, message: String, httpStatus: Int, requestID: String?) {
        self.service = service
        self.action = action
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.requestID = requestID
    }

    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
        "PriorRequestNotComplete", "EC2ThrottledException", "BandwidthLimitExceeded",
    ]

    /// Auto Scaling's answers for a group busy with another activity, listed
    /// under "Errors" of UpdateAutoScalingGroup, SetDesiredCapacity,
    /// TerminateInstanceInAutoScalingGroup, DetachInstances, ... in the Amazon
    /// EC2 Auto Scaling API Reference: ScalingActivityInProgress ("The
    /// operation can't be performed because there are scaling activities in
    /// progress", HTTP 400) and ResourceContention ("You already have a
    /// pending update to an Amazon EC2 Auto Scaling resource", HTTP 500). The
    /// request was refused and did nothing, so, like throttling, it is asked
    /// again after a backoff, also a call sent only once, and exit 75 when the
    /// attempts run out: the group will be free later.
    static let busyCodes: Set<String> = ["ScalingActivityInProgress", "ResourceContention"]

    static let authenticationCodes: Set<String> = [
        "SignatureDoesNotMatch", "InvalidClientTokenId", "AuthFailure", "UnrecognizedClientException",
        "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "ExpiredToken", "ExpiredTokenException",
        "InvalidAccessKeyId", "MissingAuthenticationToken", "IncompleteSignature", "InvalidIdentityToken",
        "IDPRejectedClaim", "OptInRequired",
    ]

    public var isThrottling: Bool { Self.throttlingCodes.contains(code) || httpStatus == 429 }
    public var isBusy: Bool { Self.busyCodes.contains(code) }
    /// Refused without effect, to be asked again later: throttled, or the group busy.
    public var isRefusedForNow: Bool { isThrottling || isBusy }
    public var isServerError: Bool { httpStatus >= 500 && !isRefusedForNow }
    public var isAuthentication: Bool { Self.authenticationCodes.contains(code) }

    public var exitStatus: KilnExit {
        if isAuthentication { return .permissionDenied }
        if isRefusedForNow || isServerError { return .temporaryFailure }
        return .serviceUnavailable
    }

    public var description: String {
        var text = "\(service) \(action): \(code): \(message) (HTTP \(httpStatus)"
        if let requestID { text += ", request id \(requestID)" }
        return text + ")"
    }
}

/// A mutating call that was sent, and then the connection failed before an
/// answer came: AWS may or may not have done it. Kiln does not send it
/// again blindly; the job can be retried, and the stage will look first.
public struct AWSUnknownOutcome: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let service: String
    public let action: String
    public let underlying: String
    public var exitStatus: KilnExit { .temporaryFailure }
    public var description: String {
        "\(service) \(action): no answer (\(underlying)); it may or may not have taken effect, so it was not sent again"
    }
}

/// An answer that is not what the service's protocol promises.
public struct AWSMalformedResponse: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let service: String
    public let action: String
    public let problem: String
    public var exitStatus: KilnExit { .serviceUnavailable }
    public var description: String { "\(service) \(action): unexpected answer: \(problem)" }
}
