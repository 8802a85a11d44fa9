import Foundation
import Synchronization

/// Cancellation of the job: GitLab cancels a job by sending SIGTERM (and
/// SIGINT by hand at a terminal). The process runner registers each running
/// child here, and a cancellation forwards the signal to the child's whole
/// process group. Tests cancel their own instance instead of signalling the
/// test process.
public final class Cancellation: Sendable {
    /// The instance the signal handlers of `installSignalHandlers()` trigger.
    public static let process = Cancellation()

    private struct State {
        var handlers: [UInt64: @Sendable (Int32) -> Void] = [:]
        var nextID: UInt64 = 0
        var receivedSignal: Int32?
        var exitWhenIdle = false
        var signalSources: [any DispatchSourceSignal] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// The signal that cancelled the job, if one has.
    public var signal: Int32? { state.withLock { $0.receivedSignal } }

    /// Registers work to do on cancellation; runs at once if already cancelled.
    public func onCancel(_ handler: @escaping @Sendable (Int32) -> Void) -> Registration {
        let (id, already): (UInt64, Int32?) = state.withLock { state in
            state.nextID += 1
            state.handlers[state.nextID] = handler
            return (state.nextID, state.receivedSignal)
        }
        if let already { handler(already) }
        return Registration(cancellation: self, id: id)
    }

    public func cancel(signal: Int32) {
        let (toRun, exitNow): ([@Sendable (Int32) -> Void], Bool) = state.withLock { state in
            if state.receivedSignal == nil { state.receivedSignal = signal }
            return (Array(state.handlers.values), state.exitWhenIdle && state.handlers.isEmpty)
        }
        if exitNow {
            // Nothing is running that needs stopping first: end as a shell would.
            _exit(128 + signal)
        }
        for handler in toRun { handler(signal) }
    }

    fileprivate func remove(_ id: UInt64) {
        _ = state.withLock { $0.handlers.removeValue(forKey: id) }
    }

    /// Catches SIGTERM and SIGINT for this process. With nothing registered
    /// the process exits at once (128 + signal); otherwise the handlers run
    /// (the runner forwards the signal to its child's group) and the stage
    /// ends when the child has. Call once, at an executable's start.
    public func installSignalHandlers() {
        state.withLock { state in
            guard state.signalSources.isEmpty else { return }
            state.exitWhenIdle = true
            for number in [SIGTERM, SIGINT] {
                Foundation.signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { [weak self] in self?.cancel(signal: number) }
                source.resume()
                state.signalSources.append(source)
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
