import Foundation

/// A program to run, with its arguments, environment and folder.
public struct Command: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    /// The child's whole environment; nil gives it this process's.
    public var environment: [String: String]?
    public var workingDirectory: String?

    public init(
        _ executable: String, _ arguments: [String] = [],
        environment: [String: String]? = nil, workingDirectory: String? = nil
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// A shell command line (`sh -c`), as project commands in `kiln.yml` are written.
    public static func shell(
        _ script: String, environment: [String: String]? = nil, workingDirectory: String? = nil
    ) -> Command {
        Command("/bin/sh", ["-c", script], environment: environment, workingDirectory: workingDirectory)
    }

    /// The command line as a person would type it (for logs and errors;
    /// the log writer masks any secret in it).
    public var displayLine: String {
        ([executable] + arguments).map(Self.shellQuoted).joined(separator: " ")
    }

    static func shellQuoted(_ word: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
        if !word.isEmpty && word.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The executable's full path, searched in the child's PATH as a shell would.
    func resolvedExecutable(path searchPath: String?) -> String? {
        if executable.contains("/") { return executable }
        for folder in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(folder)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// How a child process ended.
public enum Termination: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    public var succeeded: Bool { self == .exited(0) }

    /// From waitpid's status word (the WIFEXITED/WTERMSIG macros, which
    /// Swift cannot import).
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signalled(status & 0x7f)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signalled(let signal): "signal \(signal) (\(Self.signalName(signal)))"
        }
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGKILL: "SIGKILL"
        case SIGINT: "SIGINT"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGHUP: "SIGHUP"
        case SIGPIPE: "SIGPIPE"
        default: "signal \(signal)"
        }
    }
}
