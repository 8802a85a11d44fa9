import Foundation
import KilnArtifacts
import Testing

@testable import Rotate

/// The step function alone (issue 16, item 1): no AWS, a simulated clock,
/// and a small model of a group that launches what the desired capacity
/// asks for and whose new instances boot, serve, and pass the gate (or
/// never do, or turn bad after passing). Every strategy and batch size over
/// groups of 1 to 8, each run also killed after every step and resumed by a
/// fresh Rollout, as a re-run builds it from the journal.
@Suite struct RolloutTests {
    enum Health: CaseIterable { case healthy, never, turnsBad }

    /// The group as AWS and the probes would show it.
    struct Model {
        struct Instance {
            var id: String
            var onRelease: Bool
            var bootsAt: Date
            /// When the running gate first checked it (a resumed run checks anew).
            var checkedFrom: Date
        }

        var now = Date(timeIntervalSince1970: 0)
        var desired: Int
        var maxSize: Int
        var instances: [Instance]
        var nextID = 0
        /// Retired instances and when they are gone: at once, or held (a
        /// termination lifecycle hook's Terminating:Wait) for `departure`.
        var leaving: [(id: String, goneAt: Date)] = []
        var departure: TimeInterval = 0
        let health: Health
        let boot: TimeInterval = 1
        let passAfter: TimeInterval = 0.4
        let poll: TimeInterval = 0.5

        init(desired: Int, maxSize: Int, health: Health) {
            self.desired = desired
            self.maxSize = maxSize
            self.health = health
            instances = (0..<desired).map {
                Instance(
                    id: "old-\($0)", onRelease: false, bootsAt: Date(timeIntervalSince1970: 0),
                    checkedFrom: Date(timeIntervalSince1970: 0))
            }
        }

        func serves(_ instance: Instance) -> Bool {
            guard instance.onRelease else { return true }
            return health != .never && now >= instance.bootsAt && now >= instance.checkedFrom
        }

        func gate(_ instance: Instance) -> RolloutMember.Gate {
            guard serves(instance) else { return .pending }
            let start = max(instance.bootsAt, instance.checkedFrom)
            return now >= start.addingTimeInterval(passAfter) ? .passed : .serving
        }

        var observation: RolloutObservation {
            var failure: RotationFailure?
            if health == .turnsBad,
                let bad = instances.first(where: { $0.onRelease && gate($0) == .passed })
            {
                failure = RotationFailure(instance: bad.id, check: "http", answer: "turned unhealthy after passing")
            }
            return RolloutObservation(
                now: now, desiredCapacity: desired, maxSize: maxSize,
                members: instances.map {
                    RolloutMember(
                        id: $0.id, onRelease: $0.onRelease, inServiceAndHealthy: true, gate: gate($0),
                        problem: serves($0) ? nil : "HTTP 503")
                }, failure: failure, leaving: leavingCount)
        }

        var leavingCount: Int { leaving.filter { $0.goneAt > now }.count }

        /// The group lets `ids` go, lowering desired by as many (they never serve again).
        mutating func retire(_ ids: [String]) {
            instances.removeAll { ids.contains($0.id) }
            desired -= ids.count
            leaving += ids.map { ($0, now.addingTimeInterval(departure)) }
        }

        /// Auto Scaling launches up to the desired capacity (never above max).
        mutating func setDesired(_ value: Int) {
            desired = value
            while instances.count < min(desired, maxSize) {
                nextID += 1
                instances.append(
                    Instance(
                        id: "new-\(nextID)", onRelease: true, bootsAt: now.addingTimeInterval(boot), checkedFrom: now))
            }
        }

        var servingCount: Int { instances.filter { serves($0) }.count }
    }

    struct Outcome {
        var last: RolloutAction?
        var launches: [(batch: Int, of: Int)] = []
        var lowestServing = Int.max
        var lowestReported = Int.max
        var largest = 0
        var steps = 0
        /// Retired instances not yet gone when the step function said `finish`.
        var leftLeaving = 0
        var awaited = 0
        /// Batches launched by the retirement of the one before (`Rollout.launchReplacing`).
        var launchedByRetiring = 0
    }

    static func configuration(_ strategy: RotationStrategy, _ batch: BatchSize) -> RotateConfiguration {
        var configuration = RotateConfiguration(environment: "test", autoScalingGroup: "g")
        configuration.strategy = strategy
        configuration.batch = batch
        configuration.canarySoak = 1
        configuration.health.timeout = 10
        return configuration
    }

    static func rollout(_ configuration: RotateConfiguration, desired: Int, now: Date) -> Rollout {
        Rollout(
            schedule: RolloutSchedule(
                strategy: configuration.strategy, batch: configuration.batch, desired: desired, toReplace: desired),
            direction: .forward, configuration: configuration, desired: desired, there: [], now: now)
    }

    /// Runs the step function against the model until it finishes or fails;
    /// `killAfter` steps in, the rollout is dropped and a fresh one goes on.
    /// `replacing`: as the runner does with detach-and-terminate, a retirement
    /// that `launchReplacing` says launches the next batch is one detach
    /// without the decrement (the group replaces what it let go).
    static func drive(
        _ configuration: RotateConfiguration, desired: Int, health: Health, killAfter: Int? = nil,
        maxSize: Int? = nil, departure: TimeInterval = 0, replacing: Bool = false
    ) -> Outcome {
        var model = Model(desired: desired, maxSize: maxSize ?? desired * 3, health: health)
        model.departure = departure
        var rollout = rollout(configuration, desired: desired, now: model.now)
        var outcome = Outcome()
        var observation = model.observation
        while outcome.steps < 2_000 {
            outcome.lowestServing = min(outcome.lowestServing, model.servingCount)
            outcome.largest = max(outcome.largest, model.instances.count)
            if outcome.steps == killAfter {
                outcome.lowestReported = min(outcome.lowestReported, rollout.lowestHealthy)
                rollout = Self.rollout(configuration, desired: desired, now: model.now)
                for index in model.instances.indices { model.instances[index].checkedFrom = model.now }
                observation = model.observation
            }
            outcome.steps += 1
            let (action, _) = rollout.step(observation)
            outcome.last = action
            switch action {
            case .fail, .finish:
                outcome.lowestReported = min(outcome.lowestReported, rollout.lowestHealthy)
                outcome.leftLeaving = model.leavingCount
                return outcome
            case .retire(let ids):
                if replacing, let replaced = rollout.launchReplacing(ids, in: observation),
                    case .launch(let batch, let of, _, let target, nil) = replaced.action
                {
                    #expect(target == model.desired, "a detach without the decrement keeps the desired capacity")
                    rollout = replaced.rollout
                    outcome.launches.append((batch, of))
                    outcome.launchedByRetiring += 1
                    model.retire(ids)
                    model.setDesired(target)
                    break
                }
                model.retire(ids)
                observation = observation.retiring(ids)
                continue
            case .awaitDeparture:
                outcome.awaited += 1
            case .launch(let batch, let of, _, let target, let raise):
                if let raise { model.maxSize = raise }
                outcome.launches.append((batch, of))
                model.setDesired(target)
            case .fill(let target):
                model.setDesired(target)
            case .probe, .wait:
                break
            }
            model.now.addTimeInterval(model.poll)
            observation = model.observation
        }
        return outcome
    }

    static let batches: [BatchSize] = [.count(1), .count(2), .count(3), .percent(25), .percent(50), .percent(100)]

    @Test(arguments: RotationStrategy.allCases)
    func everyCaseConvergesOrFailsAndNeverDropsCapacity(strategy: RotationStrategy) {
        var cases = 0
        for desired in 1...8 {
            for batch in Self.batches {
                let configuration = Self.configuration(strategy, batch)
                let schedule = RolloutSchedule(
                    strategy: strategy, batch: batch, desired: desired, toReplace: desired)
                for health in Health.allCases {
                    let plain = Self.drive(configuration, desired: desired, health: health)
                    // Resumed at every step of the plain run; a failing one at a few.
                    let kills = health == .healthy ? Array(1...plain.steps) : [1, plain.steps / 2, plain.steps]
                    for killAfter in [nil] + kills.map(Optional.some) {
                        cases += 1
                        let run = Self.drive(configuration, desired: desired, health: health, killAfter: killAfter)
                        // Built only for a message: most cases need none.
                        var label: String {
                            "\(strategy) batch \(batch) of \(desired), \(health), killed after \(killAfter ?? -1)"
                        }
                        #expect(run.lowestServing >= desired, "capacity fell: \(label)")
                        switch health {
                        case .healthy:
                            #expect(run.last == .finish, "\(label): ended \(String(describing: run.last))")
                            #expect(
                                run.launches.map(\.batch) == Array(1...schedule.count),
                                "\(label): batches \(run.launches.map(\.batch)), planned \(schedule.batches)")
                            #expect(run.launches.allSatisfy { $0.of == schedule.count }, "\(label)")
                            #expect(run.lowestReported >= desired, "reported below what served: \(label)")
                        case .never, .turnsBad:
                            guard case .fail = run.last else {
                                Issue.record("\(label): ended \(String(describing: run.last))")
                                continue
                            }
                            #expect(run.launches.map(\.batch) == [1], "\(label): \(run.launches.map(\.batch))")
                        }
                    }
                }
            }
        }
        #expect(cases > 500, "\(cases) cases")
    }

    /// Retired instances that take a while to go (a termination lifecycle
    /// hook holds them in Terminating:Wait, or a detached one is terminated
    /// at the next poll): they never count as serving, the rotation goes on
    /// with its batches, and it finishes only once they are gone; also when
    /// killed after any step and resumed (issue 16, item 3).
    @Test(arguments: RotationStrategy.allCases)
    func retiredInstancesThatLeaveSlowlyHoldOnlyTheFinish(strategy: RotationStrategy) {
        var cases = 0
        for desired in 1...6 {
            for batch in Self.batches {
                let configuration = Self.configuration(strategy, batch)
                let schedule = RolloutSchedule(strategy: strategy, batch: batch, desired: desired, toReplace: desired)
                for replacing in [false, true] {
                    let plain = Self.drive(
                        configuration, desired: desired, health: .healthy, departure: 1.2, replacing: replacing)
                    // Every batch after one of its own size is launched by that
                    // one's retirement, but where a pause (the canary's soak) holds it.
                    if replacing && strategy != .canary {
                        let byRetiring = plain.launchedByRetiring
                        let sameSize = zip(schedule.batches, schedule.batches.dropFirst()).filter { $0 == $1 }.count
                        #expect(
                            byRetiring == sameSize,
                            "\(strategy) \(batch) of \(desired): \(byRetiring) of \(schedule.count) by retiring")
                    }
                    for killAfter in [nil] + Array(1...plain.steps).map(Optional.some) {
                        cases += 1
                        let run = Self.drive(
                            configuration, desired: desired, health: .healthy, killAfter: killAfter, departure: 1.2,
                            replacing: replacing)
                        var label: String {
                            "\(strategy) \(batch) of \(desired), replacing \(replacing), "
                                + "killed after \(killAfter ?? -1)"
                        }
                        #expect(run.last == .finish, "\(label): \(String(describing: run.last))")
                        #expect(run.leftLeaving == 0, "\(label): finished with \(run.leftLeaving) still leaving")
                        #expect(run.lowestServing >= desired, "\(label)")
                        #expect(run.launches.map(\.batch) == Array(1...schedule.count), "\(label)")
                    }
                    #expect(plain.awaited > 0, "\(strategy) \(batch) of \(desired): never waited for a departure")
                }
            }
        }
        #expect(cases > 100, "\(cases) cases")
    }

    @Test func aGroupAtItsMaxWithoutRaiseIsRefusedAtTheFirstLaunch() {
        var configuration = Self.configuration(.rolling, .count(2))
        configuration.raiseMaxSize = false
        let run = Self.drive(configuration, desired: 4, health: .healthy, maxSize: 4)
        guard case .fail(let failure) = run.last else {
            Issue.record("ended \(String(describing: run.last))")
            return
        }
        #expect(failure.check == "capacity")
        #expect(run.launches.isEmpty)
    }

    @Test func aDesiredCapacityChangedBySomeoneElseIsFollowed() {
        let configuration = Self.configuration(.rolling, .count(2))
        var rollout = Self.rollout(configuration, desired: 4, now: Date(timeIntervalSince1970: 0))
        var model = Model(desired: 4, maxSize: 12, health: .healthy)
        guard case .launch(_, _, _, let target, _) = rollout.step(model.observation).action else {
            Issue.record("no launch")
            return
        }
        model.setDesired(target + 1)  // a scale-out policy adds one
        let (_, notes) = rollout.step(model.observation)
        #expect(notes == [.desiredChanged(to: 7, endsAt: 5)])
        #expect(rollout.desired == 5)
    }

    @Test func theCanaryPausesOnceAfterItsBatchAlsoWhenResumed() {
        let configuration = Self.configuration(.canary, .count(2))
        for killAfter in [nil, 3, 6, 9] {
            var model = Model(desired: 3, maxSize: 9, health: .healthy)
            var rollout = Self.rollout(configuration, desired: 3, now: model.now)
            var pauses = 0
            var observation = model.observation
            for step in 0..<200 {
                if step == killAfter { rollout = Self.rollout(configuration, desired: 3, now: model.now) }
                let (action, notes) = rollout.step(observation)
                pauses += notes.filter { if case .pauseStarted(batch: 1, _, _) = $0 { true } else { false } }.count
                if action == .finish { break }
                if case .retire(let ids) = action {
                    model.retire(ids)
                    observation = observation.retiring(ids)
                    continue
                }
                if case .launch(_, _, _, let target, _) = action { model.setDesired(target) }
                model.now.addTimeInterval(model.poll)
                observation = model.observation
            }
            #expect(pauses == 1, "killed after \(killAfter ?? -1): \(pauses) pauses")
        }
    }

    /// After a launch, polls come quickly and back off until the batch's
    /// instances are known; the next batch's first poll comes when the last
    /// batch's instances were known; then the regular interval.
    @Test func pollsComeQuicklyAfterALaunchThenBackOff() {
        var cadence = PollCadence(poll: 5, probeInterval: 1)
        let start = Date(timeIntervalSince1970: 100)
        #expect(cadence.observed(everyInstanceKnown: true, pollStarted: start) == 5, "no launch: the interval")
        #expect(cadence.launched(at: start) == 1)
        #expect(cadence.observed(everyInstanceKnown: false, pollStarted: start.addingTimeInterval(1)) == 2)
        #expect(cadence.observed(everyInstanceKnown: false, pollStarted: start.addingTimeInterval(3)) == 4)
        #expect(
            cadence.observed(everyInstanceKnown: false, pollStarted: start.addingTimeInterval(7)) == 5, "capped at poll"
        )
        #expect(cadence.observed(everyInstanceKnown: true, pollStarted: start.addingTimeInterval(12)) == 5)
        #expect(cadence.knownAfter == 12)
        let next = start.addingTimeInterval(60)
        #expect(cadence.launched(at: next) == 5, "the last batch took 12 s to be known: capped at poll")
        var fast = PollCadence(poll: 5, probeInterval: 1)
        _ = fast.launched(at: start)
        _ = fast.observed(everyInstanceKnown: true, pollStarted: start.addingTimeInterval(2.5))
        #expect(fast.launched(at: next) == 2.5)
        // The first poll after the next launch goes where the poll that knew
        // the batch began (Rotation.converge passes its start): a poll that
        // took 3 s to answer does not push the next first poll 3 s later.
        var slow = PollCadence(poll: 5, probeInterval: 0.5)
        _ = slow.launched(at: start)
        _ = slow.observed(everyInstanceKnown: true, pollStarted: start.addingTimeInterval(0.5))
        #expect(slow.launched(at: next) == 0.5)
    }

    /// max_unavailable on a group at its max that may not grow: each batch
    /// terminates first, never more than max_unavailable below the start,
    /// never above max, numbered as the plan numbers them; also resumed.
    @Test(arguments: RotationStrategy.allCases)
    func aGroupAtItsMaxTerminatesFirst(strategy: RotationStrategy) {
        var cases = 0
        for desired in 2...7 {
            for unavailable in 1..<desired {
                for batch in Self.batches {
                    var configuration = Self.configuration(strategy, batch)
                    configuration.raiseMaxSize = false
                    configuration.maxUnavailable = unavailable
                    let schedule = RolloutSchedule(
                        strategy: strategy, batch: batch, desired: desired, toReplace: desired)
                    let plain = Self.drive(configuration, desired: desired, health: .healthy, maxSize: desired)
                    for killAfter in [nil] + Array(stride(from: 1, through: plain.steps, by: 3)).map(Optional.some) {
                        cases += 1
                        let run = Self.drive(
                            configuration, desired: desired, health: .healthy, killAfter: killAfter, maxSize: desired)
                        var label: String {
                            "\(strategy) \(batch) of \(desired), max_unavailable \(unavailable), "
                                + "killed \(killAfter ?? -1)"
                        }
                        #expect(run.last == .finish, "\(label): \(String(describing: run.last))")
                        #expect(run.lowestServing >= desired - unavailable, "\(label): \(run.lowestServing)")
                        #expect(run.largest <= desired, "\(label): grew to \(run.largest)")
                        let numbers = run.launches.map(\.batch)
                        #expect(numbers == numbers.sorted(), "\(label): \(numbers)")
                        #expect(Array(Set(numbers)).sorted() == Array(1...schedule.count), "\(label): \(numbers)")
                    }
                }
            }
        }
        #expect(cases > 200, "\(cases) cases")
    }
}
