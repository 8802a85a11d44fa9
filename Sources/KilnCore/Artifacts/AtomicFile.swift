import Foundation

/// Writes a whole file or nothing: a temporary file in the same folder,
/// flushed to disk, then renamed over the target. A job killed mid-write
/// leaves the old file (or none), never half of a new one.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let folder = directory.isEmpty ? "." : directory
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var template = Array((folder + "/.\((path as NSString).lastPathComponent).XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemCallError("create a temporary file beside \(path)", errno: errno) }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var renamed = false
        defer {
            if !renamed { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            try data.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw SystemCallError("write \(path)", errno: errno)
                    }
                    offset += written
                }
            }
            guard fchmod(fd, mode) == 0 else { throw SystemCallError("chmod \(path)", errno: errno) }
            guard fsync(fd) == 0 else { throw SystemCallError("fsync \(path)", errno: errno) }
        }
        guard rename(temporary, path) == 0 else { throw SystemCallError("rename into \(path)", errno: errno) }
        renamed = true
    }
}
