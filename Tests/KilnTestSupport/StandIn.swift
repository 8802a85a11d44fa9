import Foundation
import KilnCore

/// A local stand-in (moto, the world builder, the fleet simulator, the fault
/// proxy, the git server, the HTTP fixture), started from `scripts/standin`
/// in the project's virtual environment. It prints one JSON line when it is
/// ready and exits when its standard input closes, so it dies with the test
/// process even if that is killed; `stop()` (or `withStandIn`) ends it sooner.
public final class StandIn: @unchecked Sendable {
    public let name: String
    /// The ready line's fields (`url`, `port`, ...).
    public let info: [String: any Sendable]
    private let child: ChildProcess
    private let lock = NSLock()
    private var stopped = false

    public var url: String { info["url"] as? String ?? "" }

    public subscript(key: String) -> (any Sendable)? { info[key] }

    /// Starts a stand-in and waits (up to `readyTimeout`) for its ready line.
    public init(
        _ name: String, _ arguments: [String] = [], environment: [String: String] = [:], readyTimeout: TimeInterval = 60
    ) throws {
        self.name = name
        var env = ProcessInfo.processInfo.environment
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env.merge(environment) { $1 }
        let command = Command(
            TestPaths.python, ["\(TestPaths.repositoryRoot)/scripts/standin", name] + arguments, environment: env)
        child = try ChildProcess.spawn(command, stdin: .pipe, stdout: .pipe, stderr: .inherit)
        do {
            let line = try Self.readLine(child.standardOutput!, timeout: readyTimeout, what: name)
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw KilnError.internalError("stand-in \(name): ready line is not a JSON object: \(line)")
            }
            info = object.mapValues { Self.sendable($0) }
        } catch {
            _ = child.stop(grace: 2)
            throw error
        }
    }

    /// Runs a one-shot stand-in (such as `world`) and returns its JSON output.
    public static func runOnce(
        _ name: String, _ arguments: [String] = [], timeout: TimeInterval = 120
    ) throws -> [String: Any] {
        var env = ProcessInfo.processInfo.environment
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        let runner = ProcessRunner(
            log: LogWriter(sink: FileDescriptorSink.standardError, style: .plain, secrets: SecretMask()),
            cancellation: Cancellation())
        let result = try runner.check(
            Command(
                TestPaths.python, ["\(TestPaths.repositoryRoot)/scripts/standin", name] + arguments, environment: env),
            what: "stand-in \(name)", failure: .internalError, output: .capture, timeout: timeout)
        guard let object = try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any] else {
            throw KilnError.internalError("stand-in \(name): output is not a JSON object")
        }
        return object
    }

    /// Ends the stand-in (closing its stdin, then SIGTERM, then SIGKILL after
    /// 5 s, or after the ready line's `stop_seconds` when it asks for longer:
    /// moto with bodies needs its bodies' shutdown and unmounts, and a kill
    /// before them leaves mounts for the next start to clean).
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        if let stdin = child.standardInput { close(stdin) }
        let needs = (info["stop_seconds"] as? Int).map(TimeInterval.init) ?? info["stop_seconds"] as? Double ?? 0
        _ = child.stop(grace: max(5, needs))
        if let stdout = child.standardOutput { close(stdout) }
    }

    deinit { stop() }

    private static func sendable(_ value: Any) -> any Sendable {
        switch value {
        case let string as String: return string
        case let number as NSNumber:
            return Double(number.intValue) == number.doubleValue
                ? number.intValue as any Sendable : number.doubleValue as any Sendable
        case let array as [Any]: return array.map { sendable($0) }
        case let dictionary as [String: Any]: return dictionary.mapValues { sendable($0) }
        default: return String(describing: value)
        }
    }

    private static func readLine(_ fd: Int32, timeout: TimeInterval, what: String) throws -> String {
        var bytes: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var byte: UInt8 = 0
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            guard remaining > 0 else {
                throw KilnError.internalError("stand-in \(what): not ready after \(Int(timeout))s")
            }
            let ready = poll(&entry, 1, remaining)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = read(fd, &byte, 1)
            if count == 1 {
                if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
                bytes.append(byte)
            } else if count == 0 {
                throw KilnError.internalError("stand-in \(what): exited before it was ready (see its output above)")
            } else if errno != EINTR {
                throw SystemCallError("read the ready line of stand-in \(what)", errno: errno)
            }
        }
    }
}

/// Runs `body` with a stand-in that is stopped when `body` ends, also when it throws.
public func withStandIn<T>(_ name: String, _ arguments: [String] = [], _ body: (StandIn) throws -> T) throws -> T {
    let standIn = try StandIn(name, arguments)
    defer { standIn.stop() }
    return try body(standIn)
}

public func withStandIn<T>(
    _ name: String, _ arguments: [String] = [], _ body: (StandIn) async throws -> T
) async throws -> T {
    let standIn = try StandIn(name, arguments)
    defer { standIn.stop() }
    return try await body(standIn)
}
