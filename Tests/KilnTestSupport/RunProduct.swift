import Foundation
import KilnCore

/// What a run printed (standard error and, unless captured, standard output,
/// as a job log shows them), and how it ended.
public struct RunOutput: Sendable {
    public let result: ProcessResult
    public let output: String
    /// The exit code, nil when a signal ended it.
    public var code: Int32? {
        if case .exited(let code) = result.termination { return code }
        return nil
    }
}

/// Runs a command the way the tests run programs: its output kept in memory,
/// nothing masked, a generous time limit so a hang fails instead of blocking.
public func runCommand(
    _ command: Command, captureStandardOutput: Bool = false, timeout: TimeInterval = 600
) throws -> RunOutput {
    let sink = MemorySink()
    let runner = ProcessRunner(
        log: LogWriter(sink: sink, style: .plain, secrets: SecretMask()), cancellation: Cancellation())
    let result = try runner.run(command, output: captureStandardOutput ? .capture : .log, timeout: timeout)
    let captured = captureStandardOutput ? String(decoding: result.standardOutput, as: UTF8.self) : ""
    return RunOutput(result: result, output: captured + sink.text)
}

/// Runs one of the built executables (kiln-checkout, ...) with exactly this environment.
public func runProduct(
    _ name: String, _ arguments: [String], environment: [String: String], timeout: TimeInterval = 600
) throws -> RunOutput {
    try runCommand(Command(TestPaths.product(name), arguments, environment: environment), timeout: timeout)
}
