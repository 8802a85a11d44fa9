import Foundation

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
        // A file Foundation could not read or write is the machine's or the
        // input's trouble (a missing file, a folder, no permission), not a
        // bug: named in a sentence (`describe`), exit 78.
        if let file = FileFailure(error) { return file.exitStatus.rawValue }
        return KilnExit.internalError.rawValue
    }

    /// The one sentence a stage prints for an error: its own description,
    /// or, for Foundation's file errors, what was being done to which file.
    public static func describe(_ error: any Error) -> String {
        if error is any ExitStatusProviding || error is CancelledBySignal { return "\(error)" }
        if let file = FileFailure(error) { return file.description }
        return "\(error)"
    }
}

/// Foundation's file errors (NSCocoaErrorDomain, codes 4 to 642: "file
/// read" and "file write" errors), with the path they carry.
struct FileFailure: ExitStatusProviding, CustomStringConvertible {
    let path: String
    let reading: Bool
    let reason: String

    init?(_ error: any Error) {
        let error = error as NSError
        guard error.domain == NSCocoaErrorDomain, (4...642).contains(error.code) else { return nil }
        path =
            (error.userInfo[NSFilePathErrorKey] as? String)
            ?? (error.userInfo[NSURLErrorKey] as? URL)?.path ?? "a file"
        reading = error.code < 512
        let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError
        reason =
            underlying.flatMap { $0.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32($0.code))) : nil }
            ?? Self.reasons[error.code] ?? "error \(error.code)"
    }

    var exitStatus: KilnExit { .badConfiguration }
    var description: String { "could not \(reading ? "read" : "write") \(path): \(reason)" }

    /// CocoaError's codes (Foundation's FoundationErrors.h).
    static let reasons: [Int: String] = [
        4: "no such file", 256: "it cannot be read (a folder, or not a regular file?)", 257: "permission denied",
        258: "invalid file name", 259: "not in a format Kiln can read", 260: "no such file",
        261: "not in the expected encoding",
        512: "it cannot be written", 513: "permission denied", 514: "invalid file name", 516: "it already exists",
        517: "not in the expected encoding", 640: "the volume is full", 642: "the volume is read-only",
    ]
}

/// The job was cancelled (GitLab sends SIGTERM); the running child was stopped.
public struct CancelledBySignal: Error, CustomStringConvertible, Sendable {
    public let signal: Int32
    public init(signal: Int32) { self.signal = signal }
    public var description: String { "cancelled by signal \(signal); the running command was stopped" }
}
