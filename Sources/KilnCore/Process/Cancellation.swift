import Foundation

/// Cancellation of the job: GitLab cancels a job by sending SIGTERM (and
/// SIGINT by hand at a terminal). The process runner registers each running
/// child here, and a cancellation forwards the signal to the child's whole
/// process group. Tests cancel their own instance instead of signalling the
/// test process.
public final class Cancellation: @unchecked Sendable {
    /// The instance the signal handlers of `installSignalHandlers()` trigger.
    public static let process = Cancellation()

    private let lock = NSLock()
    private var handlers: [UInt64: @Sendable (Int32) -> Void] = [:]
    private var nextID: UInt64 = 0
    private var receivedSignal: Int32?
    private var exitWhenIdle = false
    private var signalSources: [any DispatchSourceSignal] = []

    public init() {}

    /// The signal that cancelled the job, if one has.
    public var signal: Int32? { lock.withLock { receivedSignal } }

    /// Registers work to do on cancellation; runs at once if already cancelled.
    public func onCancel(_ handler: @escaping @Sendable (Int32) -> Void) -> Registration {
        let (id, already): (UInt64, Int32?) = lock.withLock {
            nextID += 1
            handlers[nextID] = handler
            return (nextID, receivedSignal)
        }
        if let already { handler(already) }
        return Registration(cancellation: self, id: id)
    }

    public func cancel(signal: Int32) {
        let (toRun, exitNow): ([@Sendable (Int32) -> Void], Bool) = lock.withLock {
            if receivedSignal == nil { receivedSignal = signal }
            return (Array(handlers.values), exitWhenIdle && handlers.isEmpty)
        }
        if exitNow {
            // Nothing is running that needs stopping first: end as a shell would.
            _exit(128 + signal)
        }
        for handler in toRun { handler(signal) }
    }

    fileprivate func remove(_ id: UInt64) {
        _ = lock.withLock { handlers.removeValue(forKey: id) }
    }

    /// Catches SIGTERM and SIGINT for this process. With nothing registered
    /// the process exits at once (128 + signal); otherwise the handlers run
    /// (the runner forwards the signal to its child's group) and the stage
    /// ends when the child has. Call once, at an executable's start.
    public func installSignalHandlers() {
        lock.withLock {
            guard signalSources.isEmpty else { return }
            exitWhenIdle = true
            for number in [SIGTERM, SIGINT] {
                Foundation.signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { [weak self] in self?.cancel(signal: number) }
                source.resume()
                signalSources.append(source)
            }
        }
    }

    /// A handler's place; `end()` removes it (the runner does when its child has ended).
    public struct Registration: Sendable {
        let cancellation: Cancellation
        let id: UInt64
        public func end() { cancellation.remove(id) }
    }
}
