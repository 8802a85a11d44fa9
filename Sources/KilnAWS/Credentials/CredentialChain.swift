import Foundation
import KilnCore
import KilnHTTP
import Synchronization

/// Where credentials came from, for the log (never the keys themselves).
public struct ResolvedCredentials: Sendable {
    public let credentials: AWSCredentials
    public let source: String
}

/// One place credentials may come from. `resolve` returns nil when the
/// source is not set up at all (the chain moves on), and throws when it is
/// set up but fails (the chain stops: a half-configured role is an error,
/// not a reason to fall through to some other identity).
public protocol CredentialProvider: Sendable {
    var name: String { get }
    func resolve() throws -> ResolvedCredentials?
}

/// Credentials in the order of docs/architecture.md ("AWS"): environment;
/// web identity; shared files; ECS container; EC2 instance metadata v2. The
/// first source that works is cached. Temporary credentials are fetched
/// again from that same source five minutes before they expire, one
/// refresh at a time and without holding the lock across the STS or IMDS
/// call: while one caller refreshes, the others are served the credentials
/// that are still valid; only when none are valid do they wait for the
/// refresh, and share its outcome (soto-core's `ExpiringValue` is the model).
/// A refresh that fails while the current credentials are still valid is
/// not tried again at every call: the next attempt waits `retryAfterFailure`
/// (or half the time left, when less remains), so a broken metadata service
/// or STS sees one call per interval, not one per AWS request.
public final class CredentialChain: Sendable {
    public let providers: [any CredentialProvider]
    public let refreshMargin: TimeInterval
    public let retryAfterFailure: TimeInterval
    private let state = Mutex(State())
    private let secrets: SecretMask?
    private let log: LogWriter?
    private let clock: Clock

    private struct State {
        var cached: ResolvedCredentials?
        /// Which provider gave `cached`: it is asked again on refresh.
        var source: Int?
        var refresh: Refresh?
        var refreshes = 0
        /// After a failed refresh, while `cached` is still valid: no new
        /// attempt before this time.
        var nextAttempt: Date?
    }

    /// A refresh under way; callers with nothing valid wait for it.
    private final class Refresh: Sendable {
        private let done = DispatchSemaphore(value: 0)
        private let outcome = Mutex<Result<ResolvedCredentials, any Error>?>(nil)

        func finish(_ result: Result<ResolvedCredentials, any Error>) {
            outcome.withLock { $0 = result }
            done.signal()
        }

        func wait() throws -> ResolvedCredentials {
            done.wait()
            done.signal()  // for the next waiter
            guard let result = outcome.withLock({ $0 }) else {
                throw KilnError.internalError("credential refresh ended without an outcome")
            }
            return try result.get()
        }
    }

    public init(
        providers: [any CredentialProvider], secrets: SecretMask? = nil, log: LogWriter? = nil, clock: Clock = .system,
        refreshMargin: TimeInterval = 300, retryAfterFailure: TimeInterval = 30
    ) {
        self.providers = providers
        self.secrets = secrets
        self.log = log
        self.clock = clock
        self.refreshMargin = refreshMargin
        self.retryAfterFailure = retryAfterFailure
    }

    /// Fixed credentials (tests, and the source profile of an assumed role).
    public static func fixed(_ credentials: AWSCredentials, source: String = "given") -> CredentialChain {
        CredentialChain(providers: [
            StaticCredentialProvider(resolved: ResolvedCredentials(credentials: credentials, source: source))
        ])
    }

    /// How many times temporary credentials were fetched again.
    public var refreshes: Int { state.withLock { $0.refreshes } }

    public func credentials() throws -> AWSCredentials { try resolved().credentials }

    public func resolved() throws -> ResolvedCredentials {
        enum Step {
            case use(ResolvedCredentials)
            case wait(Refresh)
            /// This caller refreshes; `valid` is what it may fall back on.
            case refresh(Refresh, source: Int?, valid: ResolvedCredentials?)
        }
        let now = clock.now()
        let step: Step = state.withLock { state in
            if let cached = state.cached, !expires(cached, within: refreshMargin, of: now) { return .use(cached) }
            let valid = state.cached.flatMap { expires($0, within: 0, of: now) ? nil : $0 }
            if let valid, let next = state.nextAttempt, now < next { return .use(valid) }
            if let refresh = state.refresh {
                if let valid { return .use(valid) }
                return .wait(refresh)
            }
            let refresh = Refresh()
            state.refresh = refresh
            return .refresh(refresh, source: state.source, valid: valid)
        }
        switch step {
        case .use(let credentials):
            return credentials
        case .wait(let refresh):
            return try refresh.wait()
        case .refresh(let refresh, let source, let valid):
            let result = Result { try fetch(from: source) }
            state.withLock { state in
                switch result {
                case .success(let fresh):
                    if state.cached != nil { state.refreshes += 1 }
                    state.cached = fresh.resolved
                    state.source = fresh.index
                    state.nextAttempt = nil
                case .failure:
                    if let valid {
                        let left = valid.credentials.expiration.map { $0.timeIntervalSince(now) } ?? retryAfterFailure
                        state.nextAttempt = now.addingTimeInterval(min(retryAfterFailure, max(0, left / 2)))
                    }
                }
                state.refresh = nil
            }
            refresh.finish(result.map(\.resolved))
            switch result {
            case .success(let fresh):
                return fresh.resolved
            case .failure(let error):
                guard let valid else { throw error }
                log?.warning(
                    """
                    aws: could not refresh credentials from \(valid.source) (\(error)); the current ones are still valid
                    """
                )
                return valid
            }
        }
    }

    /// Asks the provider that worked last, else the first that works.
    private func fetch(from source: Int?) throws -> (resolved: ResolvedCredentials, index: Int) {
        if let source, let again = try providers[source].resolve() {
            log?.line("aws: refreshed temporary credentials from \(again.source)")
            remember(again)
            return (again, source)
        }
        for (index, provider) in providers.enumerated() {
            if let resolved = try provider.resolve() {
                log?.line("aws: credentials from \(resolved.source)")
                remember(resolved)
                return (resolved, index)
            }
        }
        throw KilnError(
            .permissionDenied,
            """
            no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), no web identity (AWS_ROLE_ARN with \
            AWS_WEB_IDENTITY_TOKEN_FILE or KILN_OIDC_TOKEN_VARIABLE), no profile in the shared files, no ECS \
            container credentials, and no instance metadata
            """)
    }

    /// Secrets learnt at run time are masked from then on.
    private func remember(_ resolved: ResolvedCredentials) {
        secrets?.add(resolved.credentials.secretAccessKey)
        if let token = resolved.credentials.sessionToken { secrets?.add(token) }
    }

    private func expires(_ resolved: ResolvedCredentials, within margin: TimeInterval, of now: Date) -> Bool {
        guard let expiration = resolved.credentials.expiration else { return false }
        return expiration.timeIntervalSince(now) < margin
    }
}

struct StaticCredentialProvider: CredentialProvider {
    let resolved: ResolvedCredentials
    var name: String { "static" }
    func resolve() throws -> ResolvedCredentials? { resolved }
}
