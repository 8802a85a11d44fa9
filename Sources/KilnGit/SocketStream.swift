import CLibGit2
import Foundation
import KilnCore
import Synchronization

/// How long a transfer may go without a byte received or sent, and the job's
/// cancellation, for one fetch.
public struct TransferLimits: Sendable {
    public var noProgressTimeout: TimeInterval
    public var cancellation: Cancellation?

    public init(noProgressTimeout: TimeInterval = 60, cancellation: Cancellation? = nil) {
        self.noProgressTimeout = noProgressTimeout
        self.cancellation = cancellation
    }
}

/// A fetch whose server sent (or took) nothing for the no-progress time:
/// temporary, safe to retry the job (exit 75).
public struct TransferStalled: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let operation: String
    public let peer: String
    public let seconds: TimeInterval

    public var exitStatus: KilnExit { .temporaryFailure }

    public var description: String {
        "\(operation): no data for \(SocketStream.wholeSeconds(seconds))s from \(peer); the server stopped sending"
    }
}

/// What the socket streams of the fetch under way obey: libgit2 calls the
/// stream on the fetching thread, the cancellation handler on another.
final class TransferWatch: Sendable {
    static let shared = TransferWatch()

    private struct State {
        var timeout: TimeInterval = 60
        var cancelled = false
        /// Set by a stream that gave up: `host:port`.
        var stalledPeer: String?
    }
    private let state = Mutex(State())

    var timeout: TimeInterval { state.withLock { $0.timeout } }
    var isCancelled: Bool { state.withLock { $0.cancelled } }
    var stalledPeer: String? { state.withLock { $0.stalledPeer } }

    func stalled(_ peer: String) { state.withLock { $0.stalledPeer = peer } }

    /// Applies `limits` until the returned registration ends (one fetch at a time).
    func begin(_ limits: TransferLimits) -> Cancellation.Registration? {
        state.withLock { $0 = State(timeout: limits.noProgressTimeout, cancelled: false, stalledPeer: nil) }
        return limits.cancellation?.onCancel { [self] _ in state.withLock { $0.cancelled = true } }
    }
}

/// libgit2's plain socket stream, with a no-progress deadline on connect,
/// read and write, and a cancellation check. libgit2 1.5 has no server
/// timeout (GIT_OPT_SET_SERVER_TIMEOUT came in 1.7; git2/common.h here has
/// none) and its own socket waits in a blocking recv() for ever when a server
/// stops sending. Its HTTP transport opens every connection through
/// git_socket_stream_new(), which uses a stream registered for
/// GIT_STREAM_STANDARD (git2/sys/stream.h), and the TLS stream (mbedTLS in
/// Debian's build) wraps one made the same way, so this covers http, https
/// and proxies alike.
enum SocketStream {
    static func register() {
        var registration = git_stream_registration()
        registration.version = GIT_STREAM_VERSION
        registration.`init` = { SocketStream.create($0, $1, $2) }
        _ = git_stream_register(GIT_STREAM_STANDARD, &registration)
    }

    private static func create(
        _ out: UnsafeMutablePointer<UnsafeMutablePointer<git_stream>?>?, _ host: UnsafePointer<CChar>?,
        _ port: UnsafePointer<CChar>?
    ) -> Int32 {
        guard let out, let host, let port else { return -1 }
        let stream = UnsafeMutablePointer<CKiln_git_socket_stream>.allocate(capacity: 1)
        stream.initialize(to: CKiln_git_socket_stream())
        stream.pointee.parent.version = GIT_STREAM_VERSION
        stream.pointee.fd = -1
        stream.pointee.host = strdup(host)
        stream.pointee.port = strdup(port)
        stream.pointee.parent.connect = { SocketStream.connect($0) }
        stream.pointee.parent.read = { SocketStream.read($0, $1, $2) }
        stream.pointee.parent.write = { SocketStream.write($0, $1, $2, $3) }
        stream.pointee.parent.close = { SocketStream.close($0) }
        stream.pointee.parent.free = { SocketStream.release($0) }
        out.pointee = UnsafeMutableRawPointer(stream).assumingMemoryBound(to: git_stream.self)
        return 0
    }

    static func wholeSeconds(_ seconds: TimeInterval) -> Int {
        guard seconds.isFinite else { return seconds > 0 ? Int(Int32.max) : 0 }
        return Int(min(max(seconds, 0), Double(Int32.max)).rounded(.up))
    }

    private static func of(_ base: UnsafeMutablePointer<git_stream>?) -> UnsafeMutablePointer<CKiln_git_socket_stream> {
        UnsafeMutableRawPointer(base!).assumingMemoryBound(to: CKiln_git_socket_stream.self)
    }

    private static func peer(_ stream: UnsafeMutablePointer<CKiln_git_socket_stream>) -> String {
        "\(String(cString: stream.pointee.host)):\(String(cString: stream.pointee.port))"
    }

    private static func fail(_ message: String) -> Int32 {
        git_error_set_str(Int32(GIT_ERROR_NET.rawValue), message)
        return -1
    }

    private enum Readiness { case ready, stalled, cancelled }

    /// Waits until `fd` is ready for `events`, the no-progress time has
    /// passed, or the job is cancelled (looked at every 200 ms).
    private static func wait(_ fd: Int32, _ events: Int16) -> Readiness {
        let watch = TransferWatch.shared
        let deadline = ContinuousClock.now + .milliseconds(wholeSeconds(watch.timeout * 1000))
        while true {
            if watch.isCancelled { return .cancelled }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return .stalled }
            let slice = min(left, .milliseconds(200))
            let milliseconds = Int32(
                slice.components.seconds * 1000 + slice.components.attoseconds / 1_000_000_000_000_000)
            var poller = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&poller, 1, max(1, milliseconds))
            // Ready, or an error the next call on the socket reports.
            if ready > 0 || (ready < 0 && errno != EINTR) { return .ready }
        }
    }

    private static func notReady(
        _ readiness: Readiness, _ stream: UnsafeMutablePointer<CKiln_git_socket_stream>
    )
        -> Int32
    {
        switch readiness {
        case .cancelled: return fail("cancelled")
        case .stalled, .ready:
            TransferWatch.shared.stalled(peer(stream))
            return fail(
                "no data for \(wholeSeconds(TransferWatch.shared.timeout))s from \(peer(stream)) (the no-progress time)"
            )
        }
    }

    private static func connect(_ base: UnsafeMutablePointer<git_stream>?) -> Int32 {
        let stream = of(base)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(stream.pointee.host, stream.pointee.port, &hints, &list)
        guard resolved == 0 else {
            return fail("failed to resolve address for \(peer(stream)): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = 0
        var entry = list
        while let address = entry {
            entry = address.pointee.ai_next
            let fd = socket(
                address.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                address.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = errno
                continue
            }
            if Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                stream.pointee.fd = fd
                return 0
            }
            lastError = errno
            if lastError == EINPROGRESS {
                let readiness = wait(fd, Int16(POLLOUT))
                guard readiness == .ready else {
                    Glibc.close(fd)
                    return notReady(readiness, stream)
                }
                var failure: Int32 = 0
                var size = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
                if failure == 0 {
                    stream.pointee.fd = fd
                    return 0
                }
                lastError = failure
            }
            Glibc.close(fd)
        }
        return fail("failed to connect to \(peer(stream)): \(String(cString: strerror(lastError)))")
    }

    private static func close(_ base: UnsafeMutablePointer<git_stream>?) -> Int32 {
        let stream = of(base)
        if stream.pointee.fd >= 0 { Glibc.close(stream.pointee.fd) }
        stream.pointee.fd = -1
        return 0
    }

    private static func release(_ base: UnsafeMutablePointer<git_stream>?) {
        let stream = of(base)
        if stream.pointee.fd >= 0 { Glibc.close(stream.pointee.fd) }
        free(stream.pointee.host)
        free(stream.pointee.port)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    private static func read(
        _ base: UnsafeMutablePointer<git_stream>?, _ data: UnsafeMutableRawPointer?, _ count: Int
    )
        -> Int
    {
        let stream = of(base)
        while true {
            let readiness = wait(stream.pointee.fd, Int16(POLLIN))
            guard readiness == .ready else { return Int(notReady(readiness, stream)) }
            let received = recv(stream.pointee.fd, data, count, 0)
            if received >= 0 { return received }
            if errno == EAGAIN || errno == EINTR { continue }
            return Int(fail("could not read from \(peer(stream)): \(String(cString: strerror(errno)))"))
        }
    }

    private static func write(
        _ base: UnsafeMutablePointer<git_stream>?, _ data: UnsafePointer<CChar>?, _ count: Int, _: Int32
    ) -> Int {
        let stream = of(base)
        var written = 0
        while written < count {
            let readiness = wait(stream.pointee.fd, Int16(POLLOUT))
            guard readiness == .ready else { return Int(notReady(readiness, stream)) }
            // MSG_NOSIGNAL: a closed peer is an error here, not a SIGPIPE (POSIX send()).
            let sent = send(stream.pointee.fd, data! + written, count - written, Int32(MSG_NOSIGNAL))
            if sent >= 0 {
                written += sent
                continue
            }
            if errno == EAGAIN || errno == EINTR { continue }
            return Int(fail("could not write to \(peer(stream)): \(String(cString: strerror(errno)))"))
        }
        return count
    }
}
