import Foundation
import Synchronization

/// Where log bytes end up: the job log (stderr) or, in tests, memory.
public protocol LogSink: Sendable {
    func write(_ bytes: [UInt8])
}

/// Writes to a file descriptor (stderr for the job log), retrying short
/// writes and EINTR.
public struct FileDescriptorSink: LogSink {
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }
    public static let standardError = FileDescriptorSink(fd: 2)

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // the log is gone (closed pipe): nothing better to do
                }
                offset += written
            }
        }
    }
}

/// Keeps everything written, for tests and for error tails.
public final class MemorySink: LogSink, Sendable {
    private let bytes = Mutex<[UInt8]>([])
    public init() {}
    public func write(_ bytes: [UInt8]) { self.bytes.withLock { $0.append(contentsOf: bytes) } }
    public var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
}

/// The log writer: human lines on stderr, GitLab collapsible sections, and
/// every secret the process knows masked in all of it.
public final class LogWriter: Sendable {
    public enum Style: Sendable {
        /// GitLab's collapsible-section escapes (inside a GitLab job).
        case gitlab
        /// Plain headings, for a person running a stage by hand.
        case plain
    }

    public let secrets: SecretMask
    public let style: Style
    private let sink: any LogSink
    private let clock: Clock

    public init(
        sink: any LogSink = FileDescriptorSink.standardError,
        style: Style,
        secrets: SecretMask,
        clock: Clock = .system
    ) {
        self.sink = sink
        self.style = style
        self.secrets = secrets
        self.clock = clock
    }

    /// One line of text, masked.
    public func line(_ text: String) {
        sink.write(Array(secrets.mask(text + "\n").utf8))
    }

    /// A line about something that went wrong; same masking, marked for the eye.
    public func error(_ text: String) {
        line("error: " + text)
    }

    public func warning(_ text: String) {
        line("warning: " + text)
    }

    /// Raw bytes that are already masked (from a `MaskingStream`).
    public func writeMasked(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        sink.write(bytes)
    }

    /// A stream for output that arrives in pieces (a child process's stdout).
    public func stream() -> LogStream { LogStream(writer: self) }

    // MARK: sections

    /// GitLab section names may hold only letters, digits, `_`, `.` and `-`.
    public static func sectionName(_ raw: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        let name = String(raw.map { allowed.contains($0) ? $0 : "_" })
        return name.isEmpty ? "section" : name
    }

    public func startSection(_ name: String, title: String, collapsed: Bool = false) {
        let name = Self.sectionName(name)
        switch style {
        case .gitlab:
            let unix = Int(clock.now().timeIntervalSince1970)
            let options = collapsed ? "[collapsed=true]" : ""
            sink.write(
                Array(secrets.mask("\u{1B}[0Ksection_start:\(unix):\(name)\(options)\r\u{1B}[0K\(title)\n").utf8))
        case .plain:
            line("==> " + title)
        }
    }

    public func endSection(_ name: String, title: String, duration: TimeInterval) {
        let name = Self.sectionName(name)
        switch style {
        case .gitlab:
            let unix = Int(clock.now().timeIntervalSince1970)
            sink.write(Array("\u{1B}[0Ksection_end:\(unix):\(name)\r\u{1B}[0K\n".utf8))
        case .plain:
            line("<== " + title + " (" + Self.formatDuration(duration) + ")")
        }
    }

    /// Runs `body` inside a section; the section is closed on every exit path.
    public func section<T>(
        _ name: String, title: String, collapsed: Bool = false, _ body: () throws -> T
    ) rethrows -> T {
        let started = clock.now()
        startSection(name, title: title, collapsed: collapsed)
        defer { endSection(name, title: title, duration: clock.now().timeIntervalSince(started)) }
        return try body()
    }

    public func section<T>(
        _ name: String, title: String, collapsed: Bool = false, _ body: () async throws -> T
    ) async rethrows -> T {
        let started = clock.now()
        startSection(name, title: title, collapsed: collapsed)
        defer { endSection(name, title: title, duration: clock.now().timeIntervalSince(started)) }
        return try await body()
    }

    public static func formatDuration(_ seconds: TimeInterval) -> String {
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        // Int(_:) traps on a value it cannot hold; a duration past a year is
        // no one's setting (Seconds stops at 30 days), so it is shown as such.
        guard seconds < 366 * 86400 else { return "over a year" }
        let whole = Int(seconds.rounded())
        return "\(whole / 60)m\(String(format: "%02d", whole % 60))s"
    }
}

/// Output that arrives in pieces, masked even when a secret is split across
/// two pieces. Call `finish()` when the stream ends.
public struct LogStream: Sendable {
    private let writer: LogWriter
    private var masking: MaskingStream

    init(writer: LogWriter) {
        self.writer = writer
        self.masking = MaskingStream(mask: writer.secrets)
    }

    public mutating func write(_ chunk: some Collection<UInt8>) {
        writer.writeMasked(masking.feed(chunk))
    }

    public mutating func finish() {
        writer.writeMasked(masking.finish())
    }
}
