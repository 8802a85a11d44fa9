import Foundation

/// Kiln's one retry policy (AWS calls, git fetches, downloads): jittered exponential backoff ("full
/// jitter", as in AWS's Architecture Blog and the SDKs' standard mode) with
/// a cap, on throttling, 5xx and connection failures, up to a number of
/// attempts. Throttling slows Kiln down; it does not fail a job until the
/// attempts run out, and then with exit 75.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: TimeInterval
    public var maxDelay: TimeInterval
    /// Where the waiting happens (tests pass one that records and returns).
    public var sleep: @Sendable (TimeInterval) -> Void
    public var random: @Sendable (ClosedRange<Double>) -> Double

    public init(
        maxAttempts: Int = 8, baseDelay: TimeInterval = 0.1, maxDelay: TimeInterval = 20,
        sleep: @escaping @Sendable (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) },
        random: @escaping @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.sleep = sleep
        self.random = random
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    public func delay(after attempt: Int) -> TimeInterval {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return random(0...ceiling)
    }
}

extension RetryPolicy {
    /// Runs `body`, again after a backoff when it throws an error
    /// `retryable` accepts (saying so in the log), up to `maxAttempts`; the
    /// last error, or any other, is thrown. The AWS client has its own loop:
    /// it must also know whether a failed request may have taken effect.
    public func run<T>(
        _ what: String, log: LogWriter?, retryable: (any Error) -> String?, _ body: () throws -> T
    ) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try body()
            } catch {
                guard attempt < maxAttempts, let reason = retryable(error) else { throw error }
                let wait = delay(after: attempt)
                log?.line(
                    "\(what): \(reason); attempt \(attempt + 1) of \(maxAttempts) in \(String(format: "%.1f", wait))s")
                sleep(wait)
            }
        }
    }
}
