/// The exit codes of docs/architecture.md ("Exit codes"), the contract a pipeline's `retry:when` and a
/// person re-running a stage rely on. Numbers come from sysexits.h where one fits.
public enum KilnExit: Int32, Sendable, CaseIterable {
    case success = 0
    case internalError = 1
    case projectFailed = 2
    case rolledBack = 3
    case usage = 64
    case badArtifact = 65
    case serviceUnavailable = 69
    case temporaryFailure = 75
    case permissionDenied = 77
    case badConfiguration = 78

    public var meaning: String {
        switch self {
        case .success: "done (or nothing to do)"
        case .internalError: "internal error (a bug)"
        case .projectFailed: "the project's build or tests failed"
        case .rolledBack: "deployment failed and was rolled back; the environment is as it was"
        case .usage: "usage error"
        case .badArtifact: "bad input artifact"
        case .serviceUnavailable: "a remote service refused or is unreachable"
        case .temporaryFailure: "temporary failure after retries: safe to retry the job"
        case .permissionDenied: "authentication or permission denied"
        case .badConfiguration: "bad configuration"
        }
    }
}

/// An error that knows which exit code it stands for. Every module's error
/// types conform, so that `KilnExit.for(_:)` is the one place that decides.
public protocol ExitStatusProviding: Error {
    var exitStatus: KilnExit { get }
}

extension KilnExit {
    /// The one place that turns any error into its exit code (docs/architecture.md).
    /// An error that does not say is a bug: exit 1.
    public static func `for`(_ error: any Error) -> Int32 {
        if let cancelled = error as? CancelledBySignal {
            // A job cancelled by GitLab (SIGTERM) ends the way a shell would: 128 + signal.
            return 128 + cancelled.signal
        }
        if let known = error as? any ExitStatusProviding {
            return known.exitStatus.rawValue
        }
        return KilnExit.internalError.rawValue
    }
}

/// The job was cancelled (GitLab sends SIGTERM); the running child was stopped.
public struct CancelledBySignal: Error, CustomStringConvertible, Sendable {
    public let signal: Int32
    public init(signal: Int32) { self.signal = signal }
    public var description: String { "cancelled by signal \(signal); the running command was stopped" }
}
