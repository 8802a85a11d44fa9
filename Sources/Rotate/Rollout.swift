import Foundation
import KilnArtifacts
import KilnCore

/// One live instance of the group (not terminating, not in standby), as
/// the step function reads it: which release it runs and what the checks
/// said of it.
struct RolloutMember: Sendable, Equatable {
    enum Gate: Sendable, Equatable {
        /// Not yet through the gate; its last check failed (or none ran yet).
        case pending
        /// Its last check passed, not yet `consecutive` of them: it serves.
        case serving
        /// Through the gate.
        case passed
    }

    var id: String
    /// On the release the rotation converges on.
    var onRelease: Bool
    /// Auto Scaling's word: `InService` and `Healthy` (what is known of an
    /// instance that is not probed: the ones being replaced).
    var inServiceAndHealthy: Bool
    /// The gate's state, for an instance on the release.
    var gate: Gate = .pending
    /// The gate's last complaint, for the timeout's message.
    var problem: String?
}

/// What one poll of AWS and the probes since it saw.
struct RolloutObservation: Sendable, Equatable {
    var now: Date
    var desiredCapacity: Int
    var maxSize: Int
    var members: [RolloutMember]
    /// The gate's fail-fast verdict (an instance that passed and turned
    /// unhealthy, one the group took out of service).
    var failure: RotationFailure?
    /// Old instances retired and not gone yet: terminating in the group
    /// (`Terminating:Wait` while a lifecycle hook holds them), or detached
    /// and not yet terminated. They never serve, and the rotation is not
    /// finished until they are gone.
    var leaving = 0

    /// What the group holds once `ids` are retired with a decrement: known
    /// without another poll (they leave; the next poll says when they are gone).
    func retiring(_ ids: [String]) -> RolloutObservation {
        var next = self
        next.members.removeAll { ids.contains($0.id) }
        next.desiredCapacity -= ids.count
        next.leaving += ids.count
        next.failure = nil
        return next
    }
}

/// What the runner does next.
enum RolloutAction: Sendable, Equatable {
    /// New instances are not through the gate yet: probe them until the next poll.
    case probe
    /// Nothing to do until then (a soak): poll again after this long.
    case wait(TimeInterval)
    /// Retire these old instances, lowering the desired capacity by as many
    /// (in bulk: `RetirementMethod`); then step again on
    /// `observation.retiring(ids)`, with no poll between.
    case retire([String])
    /// Every instance is on the release, through the gate, but `count` retired
    /// ones have not left yet: poll again (soon) until they have.
    case awaitDeparture(Int)
    /// Raise the desired capacity to `desired` (and max size to `raiseMaxTo`
    /// first, when set): batch `batch` of `of`, `surge` new instances.
    case launch(batch: Int, of: Int, surge: Int, desired: Int, raiseMaxTo: Int?)
    /// Every old instance is gone but the group holds fewer than it should: set desired.
    case fill(Int)
    /// Stop: the release failed (the runner rolls back or leaves it).
    case fail(RotationFailure)
    /// Every instance is on the release, through the gate: the last phase.
    case finish
}

/// Something the runner says or records beside the action.
enum RolloutNote: Sendable, Equatable {
    /// Someone else changed the desired capacity: followed, the rotation now ends at `endsAt`.
    case desiredChanged(to: Int, endsAt: Int)
    /// Batch `batch` is done and its pause begins (`first`: the instance that holds it, the canary).
    case pauseStarted(batch: Int, first: String, seconds: TimeInterval)
    /// Batch `batch`'s pause is over, the gate (and the alarms) having held.
    case pauseHeld(batch: Int)
}

/// What one step saw, for the picture of the deploy: time, healthy
/// capacity, group size, instances on the release, and the batch under way.
struct RolloutSample: Sendable, Equatable {
    var time: Date
    var healthy: Int
    var groupSize: Int
    var onRelease: Int
    var batch: Int
}

/// A rotation as a value: the schedule of batches, where it stands, what it
/// has seen; and `step`, a pure function from an observation to the next
/// action. The runner (`Rotation.converge`) polls AWS, runs the probes,
/// executes the action and steps again; the step function is tested alone,
/// with a simulated clock and no AWS (RolloutTests).
///
/// The other checks plug in from the runner (issue 16, items 5 and 7): the
/// CloudWatch alarms (`AlarmWatch.check`, once a poll, forward only) set
/// `observation.failure` before `step`, as the HTTP gate's fail-fast
/// verdict does; a checkpoint (`Checkpoints.stops` over this schedule) is an
/// entry of `pauses`, as the canary's soak is the pause after batch 1; the
/// picture (`RotationTimeline`) takes `samples`, one per step.
struct Rollout: Sendable {
    let schedule: RolloutSchedule
    let direction: Direction
    let strategy: RotationStrategy
    /// Batch number -> how long to hold after it, every instance through the gate.
    var pauses: [Int: TimeInterval]
    let timeout: TimeInterval
    let raiseMaxSize: Bool
    /// Instances below the starting capacity allowed while rolling: what a
    /// group that cannot grow (at its max, `raise_max_size: false`) uses to
    /// terminate first.
    let maxUnavailable: Int
    /// Instances of the batch size's kind beyond the schedule that may launch
    /// before the group counts as churning replacements.
    let churnAllowance: Int
    /// Instances on the release before this run began (going back: the old
    /// release's), which it did not launch.
    let there: Set<String>

    /// The desired capacity the rotation ends at.
    private(set) var desired: Int
    private(set) var batchNumber = 0
    private(set) var lastSetDesired: Int?
    private(set) var batchStarted: Date
    private(set) var pauseUntil: Date?
    /// The batch whose pause `pauseUntil` ends.
    private(set) var pausedBatch = 0
    private(set) var paused: Set<Int> = []
    private(set) var samples: [RolloutSample] = []
    /// Instances on the release this run has seen launched.
    private(set) var launched: [String] = []
    private(set) var lowestHealthy = Int.max
    private(set) var largestGroup = 0

    init(
        schedule: RolloutSchedule, direction: Direction, configuration: RotateConfiguration, desired: Int,
        there: Set<String>, now: Date
    ) {
        self.schedule = schedule
        self.direction = direction
        strategy = configuration.strategy
        // The canary's soak is the pause after its batch, the first.
        pauses =
            configuration.strategy == .canary && direction == .forward && configuration.canarySoak > 0
            ? [1: configuration.canarySoak] : [:]
        timeout = configuration.health.timeout
        raiseMaxSize = configuration.raiseMaxSize
        maxUnavailable = configuration.maxUnavailable
        churnAllowance = (schedule.batches.max() ?? 1) + configuration.batch.instances(of: max(1, desired))
        self.there = there
        self.desired = desired
        batchStarted = now
    }

    /// A resumed run: the pause after `batch` began at `started` in an
    /// earlier run. It is not begun again, and what remains of it is held
    /// once the batch's instances are through this run's gate; returns the
    /// seconds that remain (nil: none).
    mutating func resumePause(after batch: Int, startedAt started: Date, now: Date) -> TimeInterval? {
        paused.insert(batch)
        guard let seconds = pauses[batch] else { return nil }
        let until = started.addingTimeInterval(seconds)
        guard until > now else { return nil }
        pausedBatch = batch
        pauseUntil = until
        return until.timeIntervalSince(now)
    }

    /// Detach-and-terminate's one call for two steps: when the step after
    /// retiring `ids` (a `.retire` just returned) launches the next batch
    /// back to the desired capacity the group has now, a DetachInstances
    /// without the decrement does both, the group itself launching the
    /// replacements ("If you do not specify the option to decrement the
    /// desired capacity, Amazon EC2 Auto Scaling launches instances to
    /// replace the ones that are detached", API Reference, DetachInstances).
    /// Returns that launch and the rollout past it; nil when the retirement
    /// must lower the desired capacity (the last batch, a pause begun, a
    /// group that cannot grow, a surge of another size). Healthy capacity is
    /// the same either way: the batch through the gate serves, the detached
    /// ones are out of service at once and their replacements boot.
    func launchReplacing(
        _ ids: [String], in observation: RolloutObservation
    ) -> (
        rollout: Rollout, action: RolloutAction
    )? {
        var next = self
        let (action, notes) = next.step(observation.retiring(ids))
        guard notes.isEmpty, case .launch(_, _, let surge, let desired, nil) = action,
            surge == ids.count, desired == observation.desiredCapacity
        else { return nil }
        return (next, action)
    }

    /// How many of the schedule's instances are replaced when `old` are left.
    private func replaced(leaving old: Int) -> Int { max(0, schedule.batches.reduce(0, +) - old) }

    mutating func step(_ observation: RolloutObservation) -> (action: RolloutAction, notes: [RolloutNote]) {
        var notes: [RolloutNote] = []
        let now = observation.now
        // Someone else changed the desired capacity: follow them.
        if let set = lastSetDesired, observation.desiredCapacity != set {
            desired = max(0, desired + observation.desiredCapacity - set)
            lastSetDesired = observation.desiredCapacity
            notes.append(.desiredChanged(to: observation.desiredCapacity, endsAt: desired))
        }
        if let failure = observation.failure { return (.fail(failure), notes) }
        let new = observation.members.filter(\.onRelease)
        var old = observation.members.filter { !$0.onRelease }
        for member in new where !there.contains(member.id) && !launched.contains(member.id) {
            launched.append(member.id)
        }
        // More launches than the batches need: the group is churning replacements.
        if launched.count > desired + churnAllowance {
            return (
                .fail(
                    RotationFailure(
                        instance: nil, check: "replacements",
                        answer: """
                            \(launched.count) instances of the release launched where \(desired) are needed: \
                            new instances keep being replaced
                            """)), notes
            )
        }
        // What serves: old instances by Auto Scaling's word, new ones by their last check.
        let healthy = old.filter(\.inServiceAndHealthy).count + new.filter { $0.gate != .pending }.count
        lowestHealthy = min(lowestHealthy, healthy)
        largestGroup = max(largestGroup, observation.members.count)
        samples.append(
            RolloutSample(
                time: now, healthy: healthy, groupSize: observation.members.count, onRelease: new.count,
                batch: batchNumber))

        if let pending = new.first(where: { $0.gate != .passed }) {
            if now.timeIntervalSince(batchStarted) > timeout {
                return (
                    .fail(
                        RotationFailure(
                            instance: pending.id, check: "health gate",
                            answer: """
                                not healthy after \(LogWriter.formatDuration(timeout)): \
                                \(pending.problem ?? "no answer yet")
                                """)), notes
                )
            }
            return (.probe, notes)
        }
        if let until = pauseUntil {
            if now < until { return (.wait(until.timeIntervalSince(now)), notes) }
            pauseUntil = nil
            notes.append(.pauseHeld(batch: pausedBatch))
        }
        let excess = new.count + old.count - desired
        if excess > 0 && !old.isEmpty {
            // A batch is through the gate: retire as many old instances as it added.
            let retiring = Array(old.prefix(excess))
            old.removeFirst(retiring.count)
            lastSetDesired = observation.desiredCapacity - retiring.count
            // A batch whose last instance this retires may hold a pause
            // (found by how many are replaced, so a resumed run holds it too).
            if let done = schedule.batchEnding(atReplaced: replaced(leaving: old.count)), !paused.contains(done),
                let seconds = pauses[done]
            {
                paused.insert(done)
                pausedBatch = done
                pauseUntil = now.addingTimeInterval(seconds)
                notes.append(.pauseStarted(batch: done, first: new.first?.id ?? "", seconds: seconds))
            }
            return (.retire(retiring.map(\.id)), notes)
        }
        if old.isEmpty {
            if new.count < desired {
                lastSetDesired = desired
                batchStarted = now
                // The last old instances went first (a group that cannot grow):
                // their replacements are the schedule's last batch.
                if let next = schedule.next(afterReplacing: replaced(leaving: desired - new.count)) {
                    batchNumber = next.number
                    return (
                        .launch(
                            batch: next.number, of: schedule.count, surge: desired - new.count, desired: desired,
                            raiseMaxTo: nil), notes
                    )
                }
                return (.fill(desired), notes)
            }
            if observation.leaving > 0 { return (.awaitDeparture(observation.leaving), notes) }
            return (.finish, notes)
        }
        // Launch the next batch first (surge), raising max if it must. Old
        // instances retired first (a group that cannot grow) are not replaced yet.
        let deficit = max(0, desired - new.count - old.count)
        let next =
            schedule.next(afterReplacing: replaced(leaving: old.count + deficit)) ?? (schedule.count, old.count)
        var surge = min(next.size, old.count + deficit)
        var raise: Int?
        if new.count + old.count + surge > observation.maxSize {
            if raiseMaxSize {
                raise = new.count + old.count + surge
            } else if maxUnavailable > 0 {
                // Terminate first: never more than max_unavailable below the start.
                let room = observation.maxSize - new.count - old.count
                if room > 0 {
                    surge = min(surge, room)
                } else {
                    let count = min(
                        maxUnavailable, old.count, next.size, new.count + old.count - desired + maxUnavailable)
                    if count > 0 {
                        let retiring = Array(old.prefix(count))
                        lastSetDesired = observation.desiredCapacity - count
                        return (.retire(retiring.map(\.id)), notes)
                    }
                }
            }
            if raise == nil && new.count + old.count + surge > observation.maxSize || surge <= 0 {
                return (
                    .fail(
                        RotationFailure(
                            instance: nil, check: "capacity",
                            answer: """
                                the surge needs \(new.count + old.count + surge) instances but max size is \
                                \(observation.maxSize), raise_max_size is false and max_unavailable is \(maxUnavailable)
                                """)), notes
                )
            }
        }
        let target = new.count + old.count + surge
        batchNumber = next.number
        lastSetDesired = target
        batchStarted = now
        return (
            .launch(batch: next.number, of: schedule.count, surge: surge, desired: target, raiseMaxTo: raise), notes
        )
    }
}

/// When the next poll of AWS comes (issue 16, item 2: a batch takes its
/// instances' boot, not an extra poll interval). Right after a launch the
/// new instances are not known yet (a poll learns them and DescribeInstances
/// their addresses), so polls come quickly, doubling from `quickest` up to
/// `poll`; the first is placed at the time the previous batch took to be
/// known. Once every instance of the batch is known, polls come every
/// `poll`, with the HTTP probes between them and a poll at once when they
/// have all passed.
struct PollCadence: Sendable, Equatable {
    let poll: TimeInterval
    let quickest: TimeInterval
    private(set) var launchedAt: Date?
    private(set) var quick: TimeInterval
    /// How long the last batch took, from its launch, until the start of the
    /// poll that knew every instance of it: where the next batch's first
    /// poll goes. Measured to the poll's start, not its end, or a slow poll
    /// (200 instances on a busy moto take seconds) would push every next
    /// first poll later by its own length.
    private(set) var knownAfter: TimeInterval?

    init(poll: TimeInterval, probeInterval: TimeInterval) {
        self.poll = poll
        quickest = min(poll, probeInterval)
        quick = quickest
    }

    /// A batch was launched: the wait before the first poll.
    mutating func launched(at now: Date) -> TimeInterval {
        launchedAt = now
        quick = min(poll, max(quickest, knownAfter ?? quickest))
        return quick
    }

    /// A poll that began at `pollStarted` saw the group: the longest wait before the next one.
    mutating func observed(everyInstanceKnown: Bool, pollStarted: Date) -> TimeInterval {
        guard let launchedAt else { return poll }
        if everyInstanceKnown {
            knownAfter = max(0, pollStarted.timeIntervalSince(launchedAt))
            self.launchedAt = nil
            return poll
        }
        quick = min(poll, quick * 2)
        return quick
    }
}
