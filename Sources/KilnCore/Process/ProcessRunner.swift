import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a finished child left behind.
public struct ProcessResult: Sendable {
    public let command: Command
    public let termination: Termination
    public let duration: TimeInterval
    /// Standard output, when it was captured rather than logged.
    public let standardOutput: Data
    /// The last lines the child printed (masked), for error messages.
    public let tail: String
    /// Stopped by the runner because it ran past its time limit.
    public let timedOut: Bool
}

/// A child that failed: the command line, how it ended, and the tail of its
/// output. Callers say which exit code such a failure stands for (a project's
/// failing test is 2, a failing Packer run 69).
public struct ProcessFailure: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let result: ProcessResult
    public let exitStatus: KilnExit
    public let what: String

    /// For a caller of `run` that looks at more than the exit status first
    /// (the archive checkout: the HTTP answer that fed the child).
    public init(result: ProcessResult, exitStatus: KilnExit, what: String) {
        self.result = result
        self.exitStatus = exitStatus
        self.what = what
    }

    public var description: String {
        let ending =
            result.timedOut
            ? "timed out after \(LogWriter.formatDuration(result.duration)) and was stopped (its whole process group)"
            : "failed with \(result.termination)"
        var text = "\(what) \(ending): \(result.command.displayLine)"
        if !result.tail.isEmpty {
            text += "\nlast output:\n" + result.tail
        }
        return text
    }
}

/// The one way Kiln runs another program: its output streamed into the job
/// log (masked), a bounded tail kept for errors, a time limit that stops the
/// whole process group, and job cancellation forwarded to that group.
public struct ProcessRunner: Sendable {
    public enum OutputHandling: Sendable {
        /// Stream standard output into the log.
        case log
        /// Keep standard output for the caller (`terraform output -json`);
        /// it is not logged. Standard error still is.
        case capture
        /// Keep standard output for the caller and show it in the log line
        /// by line as `render` turns each line into text for a person (nil:
        /// the line is not shown): a tool's machine-readable output that Kiln
        /// parses (Packer's `-machine-readable`). The tail holds the rendered
        /// lines and standard error.
        case rendered(@Sendable (Substring) -> String?)
    }

    public let log: LogWriter
    public let cancellation: Cancellation
    /// How much of the end of the output to keep for error messages.
    public var tailLimit = 4096
    /// How long a group gets between SIGTERM and SIGKILL.
    public var killGrace: TimeInterval = 5

    public init(log: LogWriter, cancellation: Cancellation = .process) {
        self.log = log
        self.cancellation = cancellation
    }

    /// Runs a command to its end. A command that fails is returned, not
    /// thrown; use `check` for that. A cancelled job throws `CancelledBySignal`
    /// once the child's group has stopped. With `input`, the child's standard
    /// input is a pipe that `input` writes into on a thread of its own while
    /// the output is read here (a download streamed into `tar`); the pipe is
    /// closed when it returns, and what it throws is thrown after the child
    /// has ended (it explains the child's failure: a child that stops reading
    /// makes its writes fail with EPIPE).
    public func run(
        _ command: Command,
        output: OutputHandling = .log,
        timeout: TimeInterval? = nil,
        input: (@Sendable (Int32) throws -> Void)? = nil,
        forwarding forwardSignal: @escaping @Sendable (Int32) -> Int32 = { $0 }
    ) throws -> ProcessResult {
        let started = Date()
        if input != nil {
            // A child that exits before reading all of its input must not end
            // Kiln: the write fails with EPIPE instead (write(2)).
            _ = Foundation.signal(SIGPIPE, SIG_IGN)
        }
        let child = try ChildProcess.spawn(command, stdin: input == nil ? .null : .pipe, stdout: .pipe, stderr: .pipe)
        let registration = cancellation.onCancel { signal in
            child.signalGroup(forwardSignal(signal))
        }
        defer { registration.end() }
        let feeder = input.map { InputFeeder(fd: child.standardInput!, $0) }
        defer { feeder?.wait() }

        var outStream = log.stream()
        var errStream = log.stream()
        var tailMask = MaskingStream(mask: log.secrets)
        var tail = Tail(limit: tailLimit)
        var captured = Data()
        // .rendered: the part of standard output after its last new line.
        var partialLine: [UInt8] = []
        func render(_ line: ArraySlice<UInt8>, with render: (Substring) -> String?) {
            guard let text = render(Substring(decoding: line, as: UTF8.self)) else { return }
            let bytes = Array((text + "\n").utf8)
            outStream.write(bytes)
            tail.append(tailMask.feed(bytes))
        }
        var open: [Int32] = [child.standardOutput!, child.standardError!]
        defer { open.forEach { close($0) } }
        for fd in open { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        let deadline = timeout.map { started.addingTimeInterval($0) }
        var timedOut = false
        var killAt: Date?
        var termination: Termination?
        var drainUntil: Date?
        var buffer = [UInt8](repeating: 0, count: 65536)

        // Until both pipes are closed and the child has ended (a child may
        // close its output and go on running; its time limit still holds).
        // With both pipes closed, the child is usually exiting: check for it
        // after 1 ms, then 2, 4, ... up to 100 ms (a child that closed its
        // output and runs on costs no busy loop). With pipes open, poll wakes
        // on output at once.
        var idleWait: Int32 = 1
        while !(open.isEmpty && termination != nil) {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let wait: Int32
            if open.isEmpty {
                wait = idleWait
                idleWait = min(idleWait * 2, 100)
            } else {
                wait = 100
            }
            let ready = Glibc.poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno != EINTR {
                throw SystemCallError("poll the output of \(command.executable)", errno: errno)
            }
            for entry in fds where entry.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { Foundation.read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    let chunk = buffer[0..<count]
                    if entry.fd == child.standardOutput {
                        switch output {
                        case .log:
                            outStream.write(chunk)
                            tail.append(tailMask.feed(chunk))
                        case .capture:
                            captured.append(contentsOf: chunk)
                        case .rendered(let renderer):
                            captured.append(contentsOf: chunk)
                            partialLine.append(contentsOf: chunk)
                            while let newline = partialLine.firstIndex(of: UInt8(ascii: "\n")) {
                                render(partialLine[..<newline], with: renderer)
                                partialLine.removeSubrange(...newline)
                            }
                        }
                    } else {
                        errStream.write(chunk)
                        tail.append(tailMask.feed(chunk))
                    }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                }
            }

            let now = Date()
            if termination == nil, let ended = child.poll() {
                termination = ended
                // Give what the group still writes a moment to arrive; then
                // whatever the command left running in its group is stopped.
                drainUntil = now.addingTimeInterval(1)
            }
            if let drainUntil, now >= drainUntil { break }
            if termination == nil, let deadline, !timedOut, now >= deadline {
                timedOut = true
                log.line(
                    """
                    \(command.executable): past its time limit of \(LogWriter.formatDuration(timeout ?? 0)); \
                    stopping its process group
                    """
                )
                child.signalGroup(SIGTERM)
                killAt = now.addingTimeInterval(killGrace)
            }
            if let killAt, termination == nil, now >= killAt {
                child.signalGroup(SIGKILL)
            }
        }
        if case .rendered(let renderer) = output, !partialLine.isEmpty {
            render(partialLine[...], with: renderer)
        }
        outStream.finish()
        errStream.finish()
        tail.append(tailMask.finish())
        let ended = termination ?? child.wait()
        child.signalGroup(SIGKILL)  // anything the command left running in its group

        let result = ProcessResult(
            command: command, termination: ended, duration: Date().timeIntervalSince(started),
            standardOutput: captured, tail: tail.text, timedOut: timedOut)
        let inputFailure = feeder?.wait()
        if let signal = cancellation.signal {
            _ = result
            throw CancelledBySignal(signal: signal)
        }
        if let inputFailure { throw inputFailure }
        return result
    }

    /// Runs a command and throws a `ProcessFailure` with the given exit
    /// status unless it succeeds.
    @discardableResult
    public func check(
        _ command: Command,
        what: String,
        failure: KilnExit,
        output: OutputHandling = .log,
        timeout: TimeInterval? = nil
    ) throws -> ProcessResult {
        let result = try run(command, output: output, timeout: timeout)
        guard result.termination.succeeded, !result.timedOut else {
            throw ProcessFailure(result: result, exitStatus: failure, what: what)
        }
        return result
    }
}

/// The thread that writes a child's standard input (`ProcessRunner.run(input:)`).
private final class InputFeeder: Sendable {
    private let failure = Mutex<(done: Bool, error: (any Error)?)>((false, nil))
    private let finished = DispatchSemaphore(value: 0)

    init(fd: Int32, _ body: @escaping @Sendable (Int32) throws -> Void) {
        Thread.detachNewThread { [self] in
            var thrown: (any Error)?
            do { try body(fd) } catch { thrown = error }
            close(fd)
            failure.withLock { $0.error = thrown }
            finished.signal()
        }
    }

    /// Waits for the writer to return (once; later calls answer at once) and
    /// gives what it threw.
    @discardableResult
    func wait() -> (any Error)? {
        let waited = failure.withLock { state -> Bool in
            defer { state.done = true }
            return state.done
        }
        if !waited { finished.wait() }
        return failure.withLock { $0.error }
    }
}

/// The last `limit` bytes of a stream, cut at a line start where possible.
struct Tail {
    let limit: Int
    private var bytes: [UInt8] = []
    private var dropped = false

    init(limit: Int) { self.limit = limit }

    mutating func append(_ chunk: [UInt8]) {
        bytes.append(contentsOf: chunk)
        if bytes.count > limit * 2 {
            bytes.removeFirst(bytes.count - limit)
            dropped = true
        }
    }

    var text: String {
        var kept = bytes.suffix(limit)
        if dropped || bytes.count > limit, let newline = kept.firstIndex(of: UInt8(ascii: "\n")) {
            kept = kept[(newline + 1)...]
        }
        return String(decoding: kept, as: UTF8.self).trimmingCharacters(in: .newlines)
    }
}
