import CLibGit2
import KilnCore

/// A libgit2 call that failed: what Kiln was doing, libgit2's code, class
/// and message (read from `git_error_last()` right after the call).
public struct GitError: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32
    public let errorClass: Int32
    public let message: String
    /// Set by Kiln when the server refused the credentials it gave.
    public var credentialsRefused = false

    public var isNetwork: Bool {
        if [GIT_ERROR_NET, GIT_ERROR_HTTP, GIT_ERROR_SSL, GIT_ERROR_SSH].map({ Int32($0.rawValue) }).contains(
            errorClass)
        {
            return true
        }
        // libgit2 1.5 reports a refused or failed connection as an OS error.
        let lowered = message.lowercased()
        return errorClass == Int32(GIT_ERROR_OS.rawValue)
            && ["failed to connect", "connection", "resolve", "timed out", "network"].contains(where: lowered.contains)
    }

    public var isAuthentication: Bool {
        credentialsRefused || code == GIT_EAUTH.rawValue
            || (errorClass == Int32(GIT_ERROR_HTTP.rawValue) && message.lowercased().contains("authentication"))
    }

    public var exitStatus: KilnExit {
        if isAuthentication { return .permissionDenied }
        if isNetwork { return .serviceUnavailable }
        return .internalError
    }

    public var description: String { "\(operation): \(message) (libgit2 error \(code), class \(errorClass))" }

    /// Throws unless `result` is 0 or more.
    static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws {
        guard result < 0 else { return }
        throw last(result, operation())
    }

    static func last(_ code: Int32, _ operation: String) -> GitError {
        if let error = git_error_last() {
            return GitError(
                operation: operation, code: code, errorClass: error.pointee.klass,
                message: error.pointee.message.map { String(cString: $0) } ?? "unknown error")
        }
        return GitError(operation: operation, code: code, errorClass: 0, message: "unknown error")
    }
}
