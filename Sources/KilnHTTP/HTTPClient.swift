import CCurl
import Foundation
import KilnCore
import Synchronization

/// Proxy, CA bundle and time limits, read from the job's environment once.
public struct HTTPSettings: Sendable, Equatable {
    public var httpProxy: String?
    public var httpsProxy: String?
    public var noProxy: String?
    /// `SSL_CERT_FILE`: a CA bundle to trust instead of the system's.
    public var caBundle: String?
    public var connectTimeout: TimeInterval = 10
    public var timeout: TimeInterval = 60
    public var userAgent = "kiln/\(Kiln.version)"

    public init() {}

    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` in either
    /// case, as curl and most tools read them; `SSL_CERT_FILE`.
    public init(job: JobContext) {
        func either(_ name: String) -> String? { job[name] ?? job[name.lowercased()] }
        let all = either("ALL_PROXY")
        httpProxy = either("HTTP_PROXY") ?? all
        httpsProxy = either("HTTPS_PROXY") ?? all
        noProxy = either("NO_PROXY")
        caBundle = job["SSL_CERT_FILE"]
    }
}

/// Kiln's HTTP transport on libcurl. Easy handles are pooled so that
/// connections are kept alive between calls to the same host.
public final class HTTPClient: Sendable {
    public let settings: HTTPSettings
    private let pool = HandlePool()

    public init(settings: HTTPSettings) {
        CurlGlobal.initialise()
        self.settings = settings
    }

    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        let handle = pool.take()
        defer { pool.give(handle) }
        return try handle.perform(request, settings: settings, bodyFile: nil)
    }

    /// Like `send`, but a 2xx answer's body is streamed into a file at
    /// `path` (created or truncated) instead of memory; the response's body
    /// holds only an error answer's text. Returns the bytes written.
    public func download(_ request: HTTPRequest, to path: String) throws -> (response: HTTPResponse, bytes: Int) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemCallError("create \(path)", errno: errno) }
        defer { close(fd) }
        return try download(request, into: fd, named: path)
    }

    /// Like `download(_:to:)`, into an open file descriptor (the caller's,
    /// left open): a pipe into the process that unpacks it, so that nothing
    /// is stored on the way. `name` says what it is in an error.
    public func download(
        _ request: HTTPRequest, into fd: Int32, named name: String
    ) throws -> (response: HTTPResponse, bytes: Int) {
        let handle = pool.take()
        defer { pool.give(handle) }
        let file = BodyFile(fd: fd)
        let response: HTTPResponse
        do {
            response = try handle.perform(request, settings: settings, bodyFile: file)
        } catch {
            // The reader went away first (it failed, or it was stopped): that, not curl's abort, is what happened.
            if let failure = file.failure { throw SystemCallError("write \(name)", errno: failure) }
            throw error
        }
        if let failure = file.failure { throw SystemCallError("write \(name)", errno: failure) }
        return (response, file.written)
    }
}

/// curl_global_init is not thread-safe and must run once, before any handle.
enum CurlGlobal {
    private static let once: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
    static func initialise() { _ = once }
}

/// Idle easy handles; a handle is used by one request at a time, taken out
/// of the pool for it and given back after.
private final class HandlePool: Sendable {
    private let idle = Mutex<[EasyHandle]>([])

    func take() -> EasyHandle {
        idle.withLock { $0.popLast() } ?? EasyHandle()
    }

    func give(_ handle: EasyHandle) {
        idle.withLock { idle in if idle.count < 8 { idle.append(handle) } }
    }
}

/// One curl easy handle, freed when the pool lets go of it. Sendable by
/// libcurl's own rule, which the pool keeps: a handle may move between
/// threads but is never used by two at once ("libcurl-thread": "you must
/// never share the same handle in multiple threads"). The compiler cannot
/// see that ownership, hence `@unchecked`.
private final class EasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer

    init() {
        guard let raw = curl_easy_init() else { fatalError("curl_easy_init failed (out of memory)") }
        self.raw = raw
    }

    deinit { curl_easy_cleanup(raw) }

    /// What the callbacks fill in while a transfer runs.
    final class Transfer {
        var status = 0
        var headers: [(name: String, value: String)] = []
        var body = Data()
        var file: BodyFile?
        var handle: UnsafeMutableRawPointer?
        /// When bytes last moved (the monotonic clock), to tell a stall from other time-outs.
        var lastProgress = ContinuousClock.now
        var moved = curl_off_t(0)
        let cancelled = CancelFlag()
    }

    /// Set from the cancellation handler's thread, read by curl's.
    final class CancelFlag: Sendable {
        private let raised = Atomic<Bool>(false)
        func raise() { raised.store(true, ordering: .relaxed) }
        var isRaised: Bool { raised.load(ordering: .relaxed) }
    }

    func perform(_ request: HTTPRequest, settings: HTTPSettings, bodyFile: BodyFile?) throws -> HTTPResponse {
        // Keeps the handle's connection cache, forgets the last request's options.
        curl_easy_reset(raw)
        let transfer = Transfer()
        transfer.file = bodyFile
        transfer.handle = raw
        let box = Unmanaged.passRetained(transfer)
        defer { box.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        let redactedURL = HTTPError.redacted(request.url)
        func fail(_ failure: HTTPError.Failure, _ detail: String) -> HTTPError {
            HTTPError(failure: failure, url: redactedURL, method: request.method, detail: detail)
        }

        setString(CURLOPT_URL, request.url)
        setLong(CURLOPT_NOSIGNAL, 1)
        setLong(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout ?? settings.connectTimeout))
        setLong(CURLOPT_TIMEOUT_MS, milliseconds(request.timeout ?? settings.timeout))
        setString(CURLOPT_USERAGENT, settings.userAgent)
        if let stall = request.stallTimeout {
            // libcurl's own no-progress rule: under 1 byte/s for that many whole seconds.
            setLong(CURLOPT_LOW_SPEED_LIMIT, 1)
            setLong(CURLOPT_LOW_SPEED_TIME, max(1, StallTime.wholeSeconds(stall)))
        }
        let cancelRegistration = request.cancellation.map { cancellation in
            let flag = transfer.cancelled
            return cancellation.onCancel { _ in flag.raise() }
        }
        defer { cancelRegistration?.end() }
        // The progress callback (cancellation, and when bytes last moved) only for
        // the requests that ask; it points at this call's `transfer`, so it is
        // taken off again before that is released.
        let watchesProgress = request.cancellation != nil || request.stallTimeout != nil
        if watchesProgress {
            setLong(CURLOPT_NOPROGRESS, 0)
            CKiln_curl_setopt_xferinfo_callback(raw) { user, _, received, _, sent in
                let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
                if received + sent != transfer.moved {
                    transfer.moved = received + sent
                    transfer.lastProgress = ContinuousClock.now
                }
                return transfer.cancelled.isRaised ? 1 : 0
            }
            CKiln_curl_setopt_pointer(raw, CURLOPT_XFERINFODATA, box.toOpaque())
        }
        defer {
            if watchesProgress {
                setLong(CURLOPT_NOPROGRESS, 1)
                CKiln_curl_setopt_xferinfo_callback(raw, nil)
                CKiln_curl_setopt_pointer(raw, CURLOPT_XFERINFODATA, nil)
            }
        }
        setLong(CURLOPT_FOLLOWLOCATION, 0)
        // Only http and https, also for redirects a caller follows itself.
        setString(CURLOPT_PROTOCOLS_STR, "http,https")

        // Proxies are set explicitly (an empty string turns curl's own
        // environment lookup off), so that the environment read once at the
        // entry point is the only one that counts.
        let isHTTPS = request.url.lowercased().hasPrefix("https:")
        setString(CURLOPT_PROXY, (isHTTPS ? settings.httpsProxy : settings.httpProxy) ?? "")
        if let noProxy = settings.noProxy { setString(CURLOPT_NOPROXY, noProxy) }
        if let bundle = settings.caBundle { setString(CURLOPT_CAINFO, bundle) }

        switch request.method.uppercased() {
        case "GET":
            setLong(CURLOPT_HTTPGET, 1)
        case "HEAD":
            setLong(CURLOPT_NOBODY, 1)
        default:
            setString(CURLOPT_CUSTOMREQUEST, request.method.uppercased())
        }

        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        // curl would otherwise wait for "100 Continue" before large bodies.
        headerList = curl_slist_append(headerList, "Expect:")
        CKiln_curl_setopt_slist(raw, CURLOPT_HTTPHEADER, headerList)

        CKiln_curl_setopt_data_callback(raw, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            var status = 0
            CKiln_curl_getinfo_long(transfer.handle, CURLINFO_RESPONSE_CODE, &status)
            if let file = transfer.file, (200..<300).contains(status) {
                // A short count tells curl to stop with CURLE_WRITE_ERROR.
                return file.write(UnsafeRawPointer(data!), size * count) ? size * count : 0
            }
            transfer.body.append(UnsafeRawPointer(data!).assumingMemoryBound(to: UInt8.self), count: size * count)
            return size * count
        }
        CKiln_curl_setopt_pointer(raw, CURLOPT_WRITEDATA, box.toOpaque())
        CKiln_curl_setopt_data_callback(raw, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("HTTP/") {
                // A new status line (after a 1xx or a proxy's CONNECT): start over.
                transfer.headers.removeAll()
            } else if let colon = line.firstIndex(of: ":") {
                let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
                let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                transfer.headers.append((name, value))
            }
            return size * count
        }
        CKiln_curl_setopt_pointer(raw, CURLOPT_HEADERDATA, box.toOpaque())

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            CKiln_curl_setopt_pointer(raw, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
            return request.body.withUnsafeBytes { body in
                if !request.body.isEmpty || !["GET", "HEAD"].contains(request.method.uppercased()) {
                    CKiln_curl_setopt_off_t(raw, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
                    CKiln_curl_setopt_pointer(
                        raw, CURLOPT_POSTFIELDS,
                        UnsafeMutableRawPointer(mutating: body.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                }
                let code = curl_easy_perform(raw)
                // The buffer is ours only for this call.
                CKiln_curl_setopt_pointer(raw, CURLOPT_ERRORBUFFER, nil)
                return code
            }
        }

        guard code == CURLE_OK else {
            if code == CURLE_ABORTED_BY_CALLBACK, let signal = request.cancellation?.signal {
                throw CancelledBySignal(signal: signal)
            }
            if code == CURLE_OPERATION_TIMEDOUT, let stall = request.stallTimeout,
                ContinuousClock.now - transfer.lastProgress >= .seconds(StallTime.wholeSeconds(stall))
                    - .milliseconds(100)
            {
                throw fail(.stalled(seconds: stall), "no data for \(StallTime.text(stall))")
            }
            let message = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let detail = message.isEmpty ? String(cString: curl_easy_strerror(code)) : message
            var osErrno = 0
            CKiln_curl_getinfo_long(raw, CURLINFO_OS_ERRNO, &osErrno)
            throw fail(Self.failure(for: code, osErrno: Int32(osErrno)), detail)
        }
        var status = 0
        CKiln_curl_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    static func failure(for code: CURLcode, osErrno: Int32) -> HTTPError.Failure {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .couldNotResolve
        case CURLE_COULDNT_CONNECT: osErrno == ECONNREFUSED ? .connectionRefused : .connectionFailed
        case CURLE_OPERATION_TIMEDOUT: .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE:
            .tls
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE: .dropped
        default: .other
        }
    }

    private func setLong(_ option: CURLoption, _ value: Int) {
        CKiln_curl_setopt_long(raw, option, value)
    }

    private func setString(_ option: CURLoption, _ value: String) {
        // curl copies string options (since 7.17), so a temporary C string is enough.
        CKiln_curl_setopt_string(raw, option, value)
    }

    /// Int(_:) traps past Int's range (or on NaN); libcurl's limits are a
    /// long of milliseconds, and no request waits longer than a day.
    private func milliseconds(_ seconds: TimeInterval) -> Int {
        guard seconds.isFinite else { return 86_400_000 }
        return Int(min(max(seconds, 0.001), 86_400) * 1000)
    }
}

/// The file a download streams into.
final class BodyFile {
    let fd: Int32
    var written = 0
    var failure: Int32?

    init(fd: Int32) { self.fd = fd }

    func write(_ data: UnsafeRawPointer, _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let result = Foundation.write(fd, data + offset, count - offset)
            if result < 0 {
                if errno == EINTR { continue }
                failure = errno
                return false
            }
            offset += result
        }
        written += count
        return true
    }
}

/// A no-progress time in whole seconds, as libcurl's low-speed time takes it
/// and as messages say it; never traps, whatever the caller passes.
public enum StallTime {
    public static func wholeSeconds(_ seconds: TimeInterval) -> Int {
        guard seconds.isFinite else { return seconds > 0 ? Int(Int32.max) : 0 }
        return Int(min(max(seconds, 0), Double(Int32.max)).rounded(.up))
    }

    public static func text(_ seconds: TimeInterval) -> String { "\(wholeSeconds(seconds))s" }
}
