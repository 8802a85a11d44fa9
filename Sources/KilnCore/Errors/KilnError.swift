/// Kiln's general error: what went wrong, said so that a person can act on it,
/// and the exit code it stands for. Modules with richer failures (HTTP, AWS,
/// git) have their own error types that also conform to `ExitStatusProviding`.
public struct KilnError: ExitStatusProviding, CustomStringConvertible, Equatable, Sendable {
    public let exitStatus: KilnExit
    public let message: String

    public init(_ exitStatus: KilnExit, _ message: String) {
        self.exitStatus = exitStatus
        self.message = message
    }

    public var description: String { message }

    public static func usage(_ message: String) -> KilnError { KilnError(.usage, message) }
    public static func badArtifact(_ message: String) -> KilnError { KilnError(.badArtifact, message) }
    public static func badConfiguration(_ message: String) -> KilnError { KilnError(.badConfiguration, message) }
    public static func internalError(_ message: String) -> KilnError { KilnError(.internalError, message) }
}

/// A system call failed: what was being done, and the errno.
public struct SystemCallError: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var exitStatus: KilnExit { .internalError }
    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
