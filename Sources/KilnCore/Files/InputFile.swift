import Foundation

/// Files Kiln reads that someone else wrote (artifacts of earlier jobs, the
/// rendered user data, templates): read only when they are what they say,
/// a regular file of bounded size, so that a FIFO, a folder or `/dev/zero`
/// in an artifact's place is named as such instead of hanging or filling
/// memory.
public enum InputFile {
    /// What kind of thing a path is, in words for messages.
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a file"
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// What `path` is (following symbolic links), in words; nil when nothing is there.
    public static func kind(of path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return kind(status.st_mode)
    }

    /// Why a path cannot be read.
    public enum Problem: Sendable, Equatable {
        case missing
        case notAFile(kind: String)
        case tooLarge(bytes: Int, limit: Int)
        case unreadable(errno: Int32)

        public var description: String {
            switch self {
            case .missing: "missing"
            case .notAFile(let kind): "is \(kind), not a file"
            case .tooLarge(let bytes, let limit): "is \(bytes) bytes, more than the \(limit) Kiln reads of it"
            case .unreadable(let errno): "cannot be read (\(String(cString: strerror(errno))))"
            }
        }
    }

    /// The file's bytes, at most `limit`; the problem otherwise. The file is
    /// opened without blocking (a FIFO with no writer would block forever)
    /// and its kind and size are checked on the open descriptor, so what is
    /// read is what was checked.
    public static func read(_ path: String, limit: Int) -> Result<Data, ProblemError> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(ProblemError(errno == ENOENT || errno == ENOTDIR ? .missing : .unreadable(errno: errno)))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return .failure(ProblemError(.unreadable(errno: errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            return .failure(ProblemError(.notAFile(kind: kind(status.st_mode))))
        }
        let size = Int(status.st_size)
        guard size <= limit else { return .failure(ProblemError(.tooLarge(bytes: size, limit: limit))) }
        var bytes = [UInt8](repeating: 0, count: size + 1)
        var total = 0
        while total < bytes.count {
            let got = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + total, $0.count - total) }
            if got < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return .failure(ProblemError(.unreadable(errno: errno)))
            }
            if got == 0 { break }
            total += got
        }
        // It grew while being read: more than was checked.
        guard total <= limit else { return .failure(ProblemError(.tooLarge(bytes: total, limit: limit))) }
        return .success(Data(bytes[0..<total]))
    }

    /// The problem as an error (`InputFile.read`'s failure).
    public struct ProblemError: Error, Sendable, Equatable {
        public let problem: Problem
        public init(_ problem: Problem) { self.problem = problem }
    }
}

/// Untrusted text (from an artifact, a flag, a file) as it may go into a
/// message: control characters and NUL escaped, at most 200 characters,
/// in quotes. Nothing a hostile artifact holds reaches the terminal raw.
public enum Untrusted {
    public static func quoted(_ text: String, limit: Int = 200) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            switch scalar {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) {
                    out += String(format: "\\u{%x}", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return "'" + out + (text.unicodeScalars.count > limit ? "...'" : "'")
    }
}
