import Foundation

/// The one clock a stage reads and waits on: the time of day (artifact
/// dates, signatures, credential expiry, heartbeats) and sleeping (polls,
/// backoff, copy waits). Built once with the stage context; tests give one
/// that moves when they say, so nothing has to really wait.
public struct Clock: Sendable {
    public let now: @Sendable () -> Date
    public let sleep: @Sendable (TimeInterval) -> Void

    public init(now: @escaping @Sendable () -> Date, sleep: @escaping @Sendable (TimeInterval) -> Void) {
        self.now = now
        self.sleep = sleep
    }

    /// The machine's clock, and a real sleep.
    public static let system = Clock(
        now: { Date() },
        sleep: { seconds in if seconds > 0 { Thread.sleep(forTimeInterval: seconds) } })

    /// A clock that always says `date` and never waits (tests).
    public static func fixed(_ date: Date) -> Clock { Clock(now: { date }, sleep: { _ in }) }

    /// Seconds since `date`.
    public func since(_ date: Date) -> TimeInterval { now().timeIntervalSince(date) }
}
