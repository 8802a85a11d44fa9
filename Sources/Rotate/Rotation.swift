import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnHTTP

/// The release a rotation rolls out: an AMI and the user data for one environment.
public struct ReleaseSpecification: Sendable, Equatable {
    public var application: String
    public var version: String
    public var amiID: String
    public var userData: [UInt8]
    public var userDataSHA256: String

    public init(application: String, version: String, amiID: String, userData: [UInt8], userDataSHA256: String) {
        self.application = application
        self.version = version
        self.amiID = amiID
        self.userData = userData
        self.userDataSHA256 = userDataSHA256
    }

    /// What tells this release's instances from others, on AWS and on moto
    /// alike: a digest of the AMI and the user data, put on every instance
    /// as its `kiln:release` tag (`KilnTag.release`) by the launch template's
    /// TagSpecifications.
    public var digest: String {
        String(SHA256Digest.hex(of: Array("\(amiID)\n\(userDataSHA256)".utf8)).prefix(16))
    }
}

/// A rotation that failed and was rolled back: the environment is as it was (exit 3).
public struct RolledBack: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let failure: RotationFailure
    public let report: RotationReport
    public var exitStatus: KilnExit { .rolledBack }
    public var description: String { "the new release failed and was rolled back: \(failure)" }
}

/// A rotation that failed and was left as it stood (`--no-rollback`).
public struct LeftInPlace: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let failure: RotationFailure
    public let group: String
    public let report: RotationReport
    public var exitStatus: KilnExit { .serviceUnavailable }
    public var description: String {
        """
        the new release failed (\(failure)); --no-rollback: \(group) is left as it stands, \
        its journal kept, for a person to look at; 'kiln-rotate rollback' undoes it
        """
    }
}

/// A run that stopped part-way: `error` (AWS past its retries, a refusal,
/// the job cancelled) says why and decides the exit code; `report` is what
/// was known when it stopped, for rotation-<env>.json (outcome
/// `interrupted`). The journal stays on the group for the next run. The
/// stage writes the report and throws `error` itself, so this carries
/// rather than maps.
public struct RotationInterrupted: Error, Sendable {
    public let error: any Error
    public let report: RotationReport
}

/// A run that stopped before its journal was on the group, having changed
/// nothing: `error` says why and decides the exit code (78 for a group Kiln
/// refuses, 75 for AWS past its retries, ...); the stage reports it as
/// `refused`, with the launch template version the group was on when known.
public struct RotationRefused: Error, Sendable {
    public let error: any Error
    public let fromVersion: Int?
}

/// The outcome the stage reports.
public struct RotationReport: Sendable, Equatable {
    public var outcome: RotationResult.Outcome
    public var fromVersion: Int
    public var toVersion: Int
    public var launched: [ReplacedInstance] = []
    public var terminated: [String] = []
    public var batches = 0
    public var lowestHealthy = Int.max
    public var largestGroup = 0
    public var failure: RotationFailure?
    /// How old instances are retired in this group.
    public var retirement: RetirementMethod?
    /// Poll by poll, for rotation-<env>.svg.
    public var timeline = RotationTimeline()
}

/// Why a group is rolled back.
enum RollbackCause: Sendable {
    /// The release failed the gate (or a killed run was rolling back): exit 3.
    case failed(RotationFailure)
    /// `kiln-rotate rollback`: asked for, a success.
    case byHand

    var failure: RotationFailure? {
        if case .failed(let failure) = self { return failure }
        return nil
    }
}

/// Which way a rotation converges: onto the new release, or back onto the old.
enum Direction: Sendable {
    case forward, back

    /// The journal's phase for batch `batch` of `of`.
    func phase(batch: Int, of total: Int) -> RotationPhase {
        switch self {
        case .forward: .rolling(RotationPhase.Batch(number: batch, of: total))
        case .back: .rollingBack(RotationPhase.Batch(number: batch, of: total))
        }
    }

    /// In log lines: `rotate: rolling: batch 1 of 3`.
    var label: String {
        switch self {
        case .forward: "rolling"
        case .back: "rollback"
        }
    }
}

/// A launch template version the group is to launch, and the log line that
/// says so once AWS has taken it.
struct TemplateChange: Sendable {
    let template: LaunchTemplateSpecification
    let mixedInstances: Bool
    let announcement: String

    func send(_ client: AWSClient, group: String, log: LogWriter) throws {
        try client.updateAutoScalingGroup(group, launchTemplate: template, inMixedInstancesPolicy: mixedInstances)
        log.line(announcement)
    }
}

/// Runs a rotation on one group, or finishes one a killed run left.
public struct Rotation: Sendable {
    let client: AWSClient
    let http: HTTPClient
    let log: LogWriter
    let configuration: RotateConfiguration
    let runID: String
    let clock: Clock
    let started: Date
    /// The job's cancellation (GitLab's SIGTERM): checked at every poll, so
    /// that a cancelled run stops between two AWS calls and writes its report.
    let cancellation: Cancellation
    /// Given the picture's timeline so far (from `started`) after every poll,
    /// with the launch template version rolled to: the stage keeps it beside
    /// the report, so that a run resuming this rotation draws it whole.
    var keepTimeline: TimelineSink?
    typealias TimelineSink = @Sendable (_ timeline: RotationTimeline, _ toVersion: Int) -> Void

    var group: String { configuration.autoScalingGroup }
    static let heartbeatEvery: TimeInterval = 20

    public init(
        client: AWSClient, http: HTTPClient, log: LogWriter, configuration: RotateConfiguration, runID: String,
        clock: Clock = .system, cancellation: Cancellation = .process
    ) {
        self.cancellation = cancellation
        self.client = client
        self.http = http
        self.log = log
        self.configuration = configuration
        self.runID = runID
        self.clock = clock
        self.started = clock.now()
    }

    private func now() -> Date { clock.now() }
    /// Seconds since the rotation started, for the report and the timeline.
    private func elapsed() -> Double { now().timeIntervalSince(started) }
    var alarms: AlarmWatch { AlarmWatch(names: configuration.health.alarms, client: client) }
    private func sleep(_ seconds: TimeInterval) { clock.sleep(seconds) }

    /// Stops the run when the job was cancelled: between two steps, never inside one.
    private func checkCancelled() throws {
        if let signal = cancellation.signal { throw CancelledBySignal(signal: signal) }
    }

    // MARK: the run

    public func deploy(_ release: ReleaseSpecification, rollbackOnFailure: Bool) throws -> RotationReport {
        let observer = GroupObserver(client: client, group: group)
        // Until a journal is on the group, nothing has changed (at most an
        // unused launch template version was made): a failure up to there is
        // a refusal, reported as `refused`; after it, the run is under way.
        var currentVersion: Int?
        // A run that writes the journal itself starts from the poll it planned
        // on (nothing has moved since but its own tags and suspensions): no second poll.
        var firstPoll: (group: AutoScalingGroup, instances: [ObservedInstance])?
        let state: AutoScalingGroup
        let template: (id: String, version: String)
        var journal: RotationJournal
        do {
            let instances: [ObservedInstance]
            (state, instances) = try observer.poll()
            template = try launchTemplate(of: state)
            if let claimed = try claim(RotationJournal(tags: state.tags), release: release, state: state) {
                journal = claimed
            } else {
                let version = try numericVersion(template)
                currentVersion = version
                if instances.allSatisfy({ $0.release == release.digest }), !instances.isEmpty,
                    try versionRelease(template.id, version) == release.digest
                {
                    log.line("rotate: every instance of \(group) already runs release \(release.digest): nothing to do")
                    return RotationReport(outcome: .nothingToDo, fromVersion: version, toVersion: version)
                }
                // Refusals (standby, warm pool, ...) and unknown alarms before anything changes.
                let retirement = try retirementChoice()
                try plan(
                    state: state, instances: instances, release: release.digest, warmPool: warmPool(of: state),
                    retirement: retirement
                ).check()
                try alarms.checkExist(environment: configuration.environment)
                log.line("rotate: retirement: \(retirement.explanation)")
                let toVersion = try createVersion(template: template.id, from: version, release: release)
                let suspended = ["AZRebalance"] + configuration.suspend
                journal = RotationJournal(
                    run: runID, release: release.digest, fromVersion: version, toVersion: toVersion,
                    minSize: state.minSize, maxSize: state.maxSize, desiredCapacity: state.desiredCapacity,
                    suspendedByKiln: suspended.filter { !state.suspendedProcesses.contains($0) }, phase: .starting,
                    heartbeat: now(), retirement: retirement.method)
                try journal.save(client, group: group)
                firstPoll = (state, instances)
            }
        } catch {
            throw RotationRefused(error: error, fromVersion: currentVersion)
        }
        var report = RotationReport(outcome: .deployed, fromVersion: journal.fromVersion, toVersion: journal.toVersion)
        // While a rotation runs, a SIGTERM is ours to act on (the process
        // does not exit at once): the run stops at its next step and reports.
        let registration = cancellation.onCancel { _ in }
        defer { registration.end() }
        do {
            try chooseRetirement(&journal)
            report.retirement = journal.retirement
            // Also on a run that resumes a journal still `starting`: suspending
            // a suspended process is a no-op, and a kill may have come between
            // the journal and the suspension.
            if journal.phase == .starting && !journal.suspendedByKiln.isEmpty {
                try client.suspendProcesses(group, journal.suspendedByKiln)
            }
            return try run(
                release, journal: &journal, report: &report, template: template.id,
                mixedInstances: state.usesMixedInstancesPolicy, observer: observer, firstPoll: firstPoll,
                rollbackOnFailure: rollbackOnFailure)
        } catch let error as RolledBack {
            throw error
        } catch let error as LeftInPlace {
            throw error
        } catch {
            report.outcome = .interrupted
            report.failure = report.failure ?? RotationFailure(instance: nil, check: "run", answer: "\(error)")
            throw RotationInterrupted(error: error, report: report)
        }
    }

    /// The rotation once its journal is on the group: from the phase the
    /// journal records to a finished rotation, a rollback, or a failure left in place.
    private func run(
        _ release: ReleaseSpecification, journal: inout RotationJournal, report: inout RotationReport,
        template: String, mixedInstances: Bool, observer: GroupObserver,
        firstPoll: (group: AutoScalingGroup, instances: [ObservedInstance])?, rollbackOnFailure: Bool
    ) throws -> RotationReport {
        switch journal.phase {
        case .finishing(rollback: false):
            // Every instance was on the release when the killed run began its last phase.
            try finish(&journal, report: &report)
            log.line("rotate: \(group) runs release \(release.digest) on every instance")
            return report
        case .rollingBack, .finishing(rollback: true):
            // A killed run was rolling back: finish that first.
            let failure = RotationFailure(
                instance: nil, check: "earlier run", answer: "was rolling back when it stopped")
            throw RolledBack(
                failure: failure,
                report: try rollBack(&journal, report: &report, because: .failed(failure), observer: observer))
        default:
            break
        }
        var retirementSettled = false
        do {
            // The group is pointed at the new version in the call that
            // launches the first batch (`TemplateChange`); a resumed run,
            // whose group may already be launching, points it first.
            let change = TemplateChange(
                template: LaunchTemplateSpecification(id: template, version: "\(journal.toVersion)"),
                mixedInstances: mixedInstances,
                announcement: """
                    rotate: \(group) now launches version \(journal.toVersion) (release \(release.digest), \
                    \(release.application) \(release.version), \(release.amiID))
                    """)
            if firstPoll == nil { try change.send(client, group: group, log: log) }
            retirementSettled = try converge(
                to: release.digest, journal: &journal, report: &report, observer: observer, direction: .forward,
                firstPoll: firstPoll, templateChange: firstPoll == nil ? nil : change)
        } catch let failure as RotationFailure {
            report.failure = failure
            report.timeline.mark(.failure, failure.description, at: elapsed())
            log.error("rotate: \(failure)")
            guard rollbackOnFailure else {
                journal.phase = .failed
                try? journal.save(client, group: group)
                report.outcome = .left
                throw LeftInPlace(failure: failure, group: group, report: report)
            }
            throw RolledBack(
                failure: failure,
                report: try rollBack(&journal, report: &report, because: .failed(failure), observer: observer))
        }
        try finish(&journal, report: &report, retirementSettled: retirementSettled)
        log.line("rotate: \(group) runs release \(release.digest) on every instance")
        return report
    }

    /// Undoes the last rotation by hand (`kiln-rotate rollback`): from the
    /// journal when one is there, else from the group's `kiln:last-rotation` tag.
    public func rollBackByHand() throws -> RotationReport {
        let observer = GroupObserver(client: client, group: group)
        let (state, _) = try observer.poll()
        if var journal = try claim(RotationJournal(tags: state.tags), release: nil, state: state) {
            try chooseRetirement(&journal)
            var report = RotationReport(
                outcome: .rolledBack, fromVersion: journal.fromVersion, toVersion: journal.toVersion)
            report.retirement = journal.retirement
            return try rollBack(&journal, report: &report, because: .byHand, observer: observer)
        }
        let versions = (state.tags[KilnTag.lastRotation] ?? "").split(separator: ">").compactMap { Int($0) }
        guard versions.count == 2 else {
            throw KilnError.badConfiguration("\(group): no rotation to undo (no journal and no kiln:last-rotation tag)")
        }
        let template = try launchTemplate(of: state)
        var journal = RotationJournal(
            run: runID, release: try versionRelease(template.id, versions[1]), fromVersion: versions[0],
            toVersion: versions[1],
            minSize: state.minSize, maxSize: state.maxSize, desiredCapacity: state.desiredCapacity,
            suspendedByKiln: ["AZRebalance"].filter { !state.suspendedProcesses.contains($0) },
            phase: .rollingBack(nil),
            heartbeat: now(), retirement: try retirementChoice().method)
        try journal.save(client, group: group)
        if !journal.suspendedByKiln.isEmpty { try client.suspendProcesses(group, journal.suspendedByKiln) }
        var report = RotationReport(outcome: .rolledBack, fromVersion: versions[0], toVersion: versions[1])
        report.retirement = journal.retirement
        return try rollBack(&journal, report: &report, because: .byHand, observer: observer)
    }

    /// Puts the group back on the launch template version it started from
    /// and converges on that release; returns the report (the caller throws
    /// `RolledBack` when the cause was a failure).
    private func rollBack(
        _ journal: inout RotationJournal, report: inout RotationReport, because cause: RollbackCause,
        observer: GroupObserver
    ) throws -> RotationReport {
        report.failure = cause.failure
        report.outcome = .rolledBack
        report.timeline.mark(.rollback, "rolling back to version \(journal.fromVersion)", at: elapsed())
        journal.phase = .rollingBack(nil)
        try journal.save(client, group: group)
        let (state, _) = try observer.poll()
        let template = try launchTemplate(of: state)
        let oldRelease = try versionRelease(template.id, journal.fromVersion)
        log.line("rotate: rolling \(group) back to version \(journal.fromVersion) (release \(oldRelease))")
        try client.updateAutoScalingGroup(
            group, launchTemplate: LaunchTemplateSpecification(id: template.id, version: "\(journal.fromVersion)"),
            inMixedInstancesPolicy: state.usesMixedInstancesPolicy)
        do {
            try converge(to: oldRelease, journal: &journal, report: &report, observer: observer, direction: .back)
        } catch let rollbackFailure as RotationFailure {
            let after = cause.failure.map { " after \($0)" } ?? ""
            throw KilnError(
                .serviceUnavailable,
                """
                rollback of \(group) failed too (\(rollbackFailure))\(after); \
                the journal is kept: fix the old release's health and run kiln-rotate rollback again
                """
            )
        }
        try finish(&journal, rollback: true, report: &report)
        log.line("rotate: \(group) is back on version \(journal.fromVersion): the environment is as it was")
        return report
    }

    // MARK: converging on a release

    /// Replaces every instance not on `release` by one that is, batch by
    /// batch, never letting the healthy capacity fall below the starting
    /// desired capacity. The decisions are `Rollout.step`'s, from what the
    /// group holds at each poll, so a re-run continues where a killed one
    /// stopped and never raises the desired capacity twice; this runs them.
    ///
    /// `firstPoll`: the poll a fresh run planned on, used as this one's
    /// first (the journal was just written, so nothing was detached by an
    /// earlier run). `templateChange`: the new launch template version, not
    /// sent yet, sent with the first batch's desired capacity. Returns
    /// whether every retired instance is known terminated (nothing tagged
    /// `kiln:retiring` is left in or out of the group for the last phase to
    /// look for).
    @discardableResult
    private func converge(
        to release: String, journal: inout RotationJournal, report: inout RotationReport, observer: GroupObserver,
        direction: Direction, firstPoll: (group: AutoScalingGroup, instances: [ObservedInstance])? = nil,
        templateChange: TemplateChange? = nil
    ) throws -> Bool {
        let gate = HealthGate(settings: configuration.health, targetGroups: [], http: http)
        var lastHeartbeat = now()
        var plannedPoll = firstPoll
        var templateChange = templateChange
        let first = try firstPoll?.instances ?? observer.poll().instances
        let toReplaceNow = first.filter { $0.release != release && !$0.lifecycleState.isTerminating }.count
        // Going forward, every instance of the group at the start is replaced:
        // the schedule is the plan's, over the starting desired capacity, and
        // a resumed run finds its place in it by how many are replaced (so it
        // numbers on). Going back, only the new release's instances are.
        let schedule = RolloutSchedule(
            strategy: configuration.strategy, batch: configuration.batch,
            desired: max(1, journal.desiredCapacity),
            toReplace: direction == .forward ? max(journal.desiredCapacity, toReplaceNow) : toReplaceNow)
        // Instances on `release` before this run began were not launched by
        // it (going back: the old release's, checked again through the gate).
        let there: Set<String> = direction == .back ? Set(first.filter { $0.release == release }.map(\.id)) : []
        var rollout = Rollout(
            schedule: schedule, direction: direction, configuration: configuration, desired: journal.desiredCapacity,
            there: there, now: now())
        // Checkpoints and alarms gate the way forward; a rollback returns to
        // what ran before and stops for neither. A checkpoint is a pause of
        // the schedule's (with the canary's soak, the longer holds).
        let checkpoints =
            direction == .forward ? configuration.checkpoints?.stops(batches: schedule.batches) ?? [] : []
        for stop in checkpoints {
            rollout.pauses[stop.afterBatch] = max(
                rollout.pauses[stop.afterBatch] ?? 0, configuration.checkpoints?.soak ?? 0)
        }
        let checkpointAfter = Dictionary(
            checkpoints.map { ($0.afterBatch, $0) }, uniquingKeysWith: { first, _ in first })
        if direction == .forward, let soak = journal.soak,
            let left = rollout.resumePause(after: soak.afterBatch, startedAt: soak.started, now: now())
        {
            log.line(
                """
                rotate: the soak after batch \(soak.afterBatch) began in an earlier run; \
                \(LogWriter.formatDuration(left)) of it left
                """
            )
        }
        let alarms = direction == .forward ? self.alarms : AlarmWatch(names: [], client: client)
        let retirement = journal.retirement ?? .detachAndTerminate
        var departures = Departures()
        if retirement == .detachAndTerminate {
            // A killed run may have detached instances it did not terminate.
            if firstPoll == nil {
                try terminateLeftDetached(
                    holding: Set(first.map(\.id)), report: &report, direction: direction, atEnd: false)
            }
        }
        var awaitingAnnounced = false
        var departureChecked = false
        var cadence = PollCadence(poll: configuration.health.poll, probeInterval: configuration.health.probeInterval)
        // How many instances of the release the group should hold once the batch under way is launched.
        var expectedOnRelease = 0
        defer {
            report.lowestHealthy = min(report.lowestHealthy, rollout.lowestHealthy)
            report.largestGroup = max(report.largestGroup, rollout.largestGroup)
            report.timeline = timeline(report.timeline, adding: rollout.samples, direction: direction)
        }

        while true {
            try checkCancelled()
            if now().timeIntervalSince(lastHeartbeat) >= Self.heartbeatEvery {
                journal.heartbeat = now()
                try journal.save(client, group: group)
                lastHeartbeat = now()
            }
            let polledAt = now()
            let (state, instances) = try plannedPoll.take() ?? observer.poll()
            let leaving = try observeDepartures(
                instances, release: release, departures: &departures, report: &report, direction: direction)
            let live = instances.filter {
                !$0.lifecycleState.isTerminating && $0.lifecycleState != .standby && departures.detached[$0.id] == nil
            }
            let new = live.filter { $0.release == release }
            // One DescribeAlarms a poll: an alarm in ALARM fails the batch as the gate's own verdict does.
            let failure = try judge(gate, targetGroups: state.targetGroupARNs, new) ?? alarms.check()
            let nextPoll = cadence.observed(
                everyInstanceKnown: new.count >= expectedOnRelease && new.allSatisfy { $0.privateIP != nil },
                pollStarted: polledAt)
            var observation = RolloutObservation(
                now: now(), desiredCapacity: state.desiredCapacity, maxSize: state.maxSize,
                members: live.map { instance in
                    RolloutMember(
                        id: instance.id, onRelease: instance.release == release,
                        inServiceAndHealthy: instance.inService && instance.healthStatus == .healthy,
                        gate: gate.passed(instance.id) ? .passed : gate.serving(instance.id) ? .serving : .pending,
                        problem: gate.lastProblem(instance.id))
                }, failure: failure, leaving: leaving)
            defer {
                keepTimeline?(
                    timeline(report.timeline, adding: rollout.samples, direction: direction), journal.toVersion)
            }
            // One poll may take several steps: a retirement is known without another poll.
            stepping: while true {
                let (action, notes) = rollout.step(observation)
                try record(notes, journal: &journal, checkpoints: checkpointAfter, report: &report)
                recordLaunched(rollout, report: &report, gate: gate)
                // The new version goes with the first change of the group's
                // size; a first step that waits (instances of the release
                // already there) sends it alone, so that the group launches
                // nothing more of the old release meanwhile.
                switch action {
                case .probe, .wait, .awaitDeparture: try templateChange.take()?.send(client, group: group, log: log)
                default: break
                }
                switch action {
                case .fail(let failure):
                    throw failure
                case .probe:
                    let passed = try probeUntilNextPoll(
                        gate, targetGroups: state.targetGroupARNs, new, within: nextPoll)
                    // Through the gate by the probes since this poll, whose Auto
                    // Scaling and target group states the gate judged with them
                    // (healthy, or it could not pass): what another poll would
                    // confirm is known, so the next step comes at once. With
                    // alarms, a poll reads them once the batch serves.
                    guard passed, alarms.names.isEmpty else { break stepping }
                    observation.now = now()
                    for index in observation.members.indices {
                        let id = observation.members[index].id
                        observation.members[index].gate =
                            gate.passed(id) ? .passed : gate.serving(id) ? .serving : .pending
                        observation.members[index].problem = gate.lastProblem(id)
                    }
                case .wait(let seconds):
                    sleep(min(seconds, configuration.health.poll))
                    break stepping
                case .retire(let ids):
                    // A retirement follows the batch through the gate (or, in a
                    // group that cannot grow, makes room for the next one).
                    report.timeline.mark(
                        .batchConfirmed,
                        rollout.batchNumber == 0
                            ? "\(direction.label): retiring \(ids.count) left over"
                            : "\(direction.label) \(rollout.batchNumber)/\(schedule.count)",
                        at: elapsed())
                    let byID = Dictionary(live.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                    // A group that cannot grow retires first: it launches the new version after.
                    try templateChange.take()?.send(client, group: group, log: log)
                    let replaced =
                        retirement == .detachAndTerminate ? rollout.launchReplacing(ids, in: observation) : nil
                    if let replaced, case .launch(let batch, let of, let surge, let desired, _) = replaced.action {
                        // The detach launches the next batch (`Rollout.launchReplacing`).
                        rollout = replaced.rollout
                        report.batches = batch
                        report.timeline.mark(.batchStarted, "\(direction.label) \(batch)/\(of)", at: elapsed())
                        keepTimeline?(
                            timeline(report.timeline, adding: rollout.samples, direction: direction),
                            journal.toVersion)
                        try retire(
                            ids.compactMap { byID[$0] }, keeping: [], desiredAfter: desired, method: retirement,
                            group: state, departures: &departures, direction: direction, observer: observer,
                            replacing: true)
                        let left = observation.members.filter { !$0.onRelease }.count - ids.count
                        try launched(
                            batch: batch, of: of, surge: surge, desired: desired, left: left, direction: direction,
                            journal: &journal)
                        lastHeartbeat = now()
                        expectedOnRelease = desired - left
                        sleep(cadence.launched(at: now()))
                        break stepping
                    }
                    try retire(
                        ids.compactMap { byID[$0] }, keeping: live.filter { $0.release == release },
                        desiredAfter: observation.desiredCapacity - ids.count, method: retirement, group: state,
                        departures: &departures, direction: direction, observer: observer)
                    observation = observation.retiring(ids)
                case .awaitDeparture(let count):
                    let held = instances.contains { $0.lifecycleState.isWaitingOnHook }
                    if !awaitingAnnounced {
                        awaitingAnnounced = true
                        let why = held ? " (a lifecycle hook holds them)" : ""
                        log.line(
                            "rotate: \(direction.label): every instance is on the release; "
                                + "waiting for \(count) retired instance(s) to leave\(why)")
                    }
                    // A hook may hold them for its heartbeat timeout: poll at the
                    // interval then; a detached one is terminated at the next
                    // poll, the first at once (a detach may be done already).
                    if held || departureChecked { sleep(held ? configuration.health.poll : cadence.quickest) }
                    departureChecked = true
                    break stepping
                case .fill(let desired):
                    try setDesired(desired, raisingMaxTo: nil, templateChange: &templateChange)
                    expectedOnRelease = desired
                    sleep(cadence.launched(at: now()))
                    break stepping
                case .launch(let batch, let of, let surge, let desired, let raiseMaxTo):
                    report.batches = batch
                    // Marked and kept before the journal says so: a run killed
                    // from here on leaves a picture that shows the batch begun.
                    report.timeline.mark(.batchStarted, "\(direction.label) \(batch)/\(of)", at: elapsed())
                    keepTimeline?(
                        timeline(report.timeline, adding: rollout.samples, direction: direction), journal.toVersion)
                    try setDesired(desired, raisingMaxTo: raiseMaxTo, templateChange: &templateChange)
                    let old = live.filter { $0.release != release && observation.members.map(\.id).contains($0.id) }
                    try launched(
                        batch: batch, of: of, surge: surge, desired: desired, left: old.count, direction: direction,
                        journal: &journal)
                    lastHeartbeat = now()
                    expectedOnRelease = desired - old.count
                    // Marked while the batch boots, before any of them is detached.
                    if retirement == .detachAndTerminate { try markRetiring(old, departures: &departures) }
                    sleep(cadence.launched(at: now()))
                    break stepping
                case .finish:
                    // Every instance already ran the release: the group launches it from now on too.
                    try templateChange.take()?.send(client, group: group, log: log)
                    return departures.detached.isEmpty
                }
            }
        }
    }

    /// A batch launched: the journal says so and the log. Written after the
    /// call that launches it, while its instances boot: a run killed before
    /// the journal says so finds its place by what the group holds (the
    /// phase's batch is for people and the refusal message).
    private func launched(
        batch: Int, of: Int, surge: Int, desired: Int, left: Int, direction: Direction,
        journal: inout RotationJournal
    ) throws {
        journal.phase = direction.phase(batch: batch, of: of)
        journal.heartbeat = now()
        try journal.save(client, group: group)
        log.line(
            """
            rotate: \(direction.label): batch \(batch) of \(of): \
            launching \(surge) (desired \(desired)), \(left) old left
            """
        )
    }

    /// The desired capacity set, in one call with what must change with it:
    /// the max size raised for the surge, and (the first batch of a fresh
    /// run) the new launch template version. UpdateAutoScalingGroup sets them
    /// together and checks the desired capacity against the new max size
    /// ("The desired capacity must be greater than or equal to the minimum
    /// size and less than or equal to the maximum size", API Reference,
    /// UpdateAutoScalingGroup); the instances it launches use the version it
    /// sets, as moto's UpdateAutoScalingGroup sets the template before the
    /// capacity. Alone, SetDesiredCapacity (`HonorCooldown=false`).
    private func setDesired(
        _ desired: Int, raisingMaxTo raise: Int?, templateChange: inout TemplateChange?
    ) throws {
        guard raise != nil || templateChange != nil else {
            try client.setDesiredCapacity(group, desired)
            return
        }
        try client.updateAutoScalingGroup(
            group, maxSize: raise, desiredCapacity: desired, launchTemplate: templateChange?.template,
            inMixedInstancesPolicy: templateChange?.mixedInstances ?? false)
        if let change = templateChange.take() { log.line(change.announcement) }
    }

    /// `timeline` with the rollout's samples, from the run's start; the
    /// picture counts the instances of the release deployed, going back too.
    private func timeline(
        _ timeline: RotationTimeline, adding samples: [RolloutSample], direction: Direction
    ) -> RotationTimeline {
        var timeline = timeline
        for sample in samples {
            timeline.record(
                RotationTimeline.Sample(
                    seconds: sample.time.timeIntervalSince(started), healthy: sample.healthy,
                    groupSize: sample.groupSize,
                    newRelease: direction == .forward ? sample.onRelease : sample.groupSize - sample.onRelease))
        }
        return timeline
    }

    /// The notes of a step, in the log (and the journal, for a followed desired capacity and a pause begun).
    private func record(
        _ notes: [RolloutNote], journal: inout RotationJournal, checkpoints: [Int: Checkpoints.Stop],
        report: inout RotationReport
    ) throws {
        for note in notes {
            if case .pauseStarted(let batch, _, _) = note {
                // In the journal, so that a run resumed during the pause waits only the rest of it.
                journal.soak = RotationJournal.Soak(afterBatch: batch, started: now())
                try journal.save(client, group: group)
            }
            switch note {
            case .desiredChanged(let to, let endsAt):
                log.warning(
                    """
                    rotate: \(group)'s desired capacity was changed to \(to) by someone else; \
                    the rotation now ends at \(endsAt)
                    """
                )
                journal.desiredCapacity = endsAt
                try journal.save(client, group: group)
            case .pauseStarted(let batch, _, let seconds) where checkpoints[batch] != nil:
                let stop = checkpoints[batch]!
                report.timeline.mark(.checkpoint, "checkpoint \(stop.label)", at: elapsed())
                log.line(
                    """
                    rotate: checkpoint \(stop.label) (\(stop.replaced) of \(stop.total) replaced): \
                    soaking for \(LogWriter.formatDuration(seconds)), the gate still watching
                    """
                )
            case .pauseHeld(let batch) where checkpoints[batch] != nil:
                log.line("rotate: checkpoint \(checkpoints[batch]!.label) held through its soak")
            case .pauseStarted(let batch, let first, let seconds):
                let what = configuration.strategy == .canary && batch == 1 ? "canary \(first)" : "batch \(batch)"
                log.line("rotate: \(what) is healthy; soaking for \(LogWriter.formatDuration(seconds))")
            case .pauseHeld:
                log.line(
                    configuration.strategy == .canary
                        ? "rotate: the canary held through its soak" : "rotate: the batch held through its soak")
            }
        }
    }

    /// The instances this run launched, with when each was first seen and through the gate.
    private func recordLaunched(_ rollout: Rollout, report: inout RotationReport, gate: HealthGate) {
        for id in rollout.launched where !report.launched.contains(where: { $0.instance == id }) {
            report.launched.append(
                ReplacedInstance(instance: id, firstSeenSeconds: now().timeIntervalSince(started), healthySeconds: nil))
        }
        for index in report.launched.indices
        where report.launched[index].healthySeconds == nil && gate.passed(report.launched[index].instance) {
            report.launched[index].healthySeconds = now().timeIntervalSince(started)
        }
    }

    /// Between two polls of AWS, the new instances' HTTP probes run every
    /// `probe_interval` (they cost no AWS call), judged with what the last
    /// poll said of Auto Scaling and the target groups. The next poll comes
    /// at once when they have all passed, so a batch waits for its boot,
    /// not for the poll interval.
    /// Returns whether they have all passed.
    private func probeUntilNextPoll(
        _ gate: HealthGate, targetGroups: [String], _ instances: [ObservedInstance], within wait: TimeInterval
    ) throws -> Bool {
        let nextPoll = now().addingTimeInterval(wait)
        let interval =
            configuration.health.url == nil
            ? configuration.health.poll : min(configuration.health.probeInterval, configuration.health.poll)
        while true {
            try checkCancelled()
            let left = nextPoll.timeIntervalSince(now())
            if left <= 0 { return false }
            sleep(min(interval, left))
            if now() >= nextPoll { return false }
            if let failure = judge(gate, targetGroups: targetGroups, instances) { throw failure }
            if instances.allSatisfy({ gate.passed($0.id) }) { return true }
        }
    }

    private func judge(_ gate: HealthGate, targetGroups: [String], _ instances: [ObservedInstance]) -> RotationFailure?
    {
        gate.targetGroups = targetGroups
        return gate.judge(instances, now: now())
    }

    // MARK: the group's state before and after

    /// Sizes and suspended processes back as they were, the journal gone,
    /// and the rotation recorded for `kiln-rotate rollback`. The journal's
    /// phase says `finishing` first: each step here is idempotent, and a run
    /// that finds the phase does only these steps, so a failure or a kill
    /// part-way through is finished by the next run.
    ///
    /// `retirementSettled`: this run's own convergence saw every retired
    /// instance terminated, so the last phase does not look for leftovers
    /// (a DescribeAutoScalingGroups and a DescribeInstances); a resumed last
    /// phase, a rollback and scale-in retirement always look.
    private func finish(
        _ journal: inout RotationJournal, rollback: Bool = false, report: inout RotationReport,
        retirementSettled: Bool = false
    ) throws {
        // The record `kiln-rotate rollback` reads, in the same CreateOrUpdateTags
        // as the phase: a run killed after it finds `finishing` and does only the rest.
        let lastRotation =
            rollback
            ? [:]
            : [KilnTag.lastRotation: "\(journal.fromVersion)>\(journal.toVersion)", KilnTag.release: journal.release]
        if journal.phase != .finishing(rollback: rollback) {
            journal.phase = .finishing(rollback: rollback)
            journal.heartbeat = now()
            try journal.save(client, group: group, adding: lastRotation)
        } else if !lastRotation.isEmpty {
            try client.createOrUpdateTags(autoScalingGroup: group, tags: lastRotation, propagateAtLaunch: false)
        }
        let method = journal.retirement ?? .detachAndTerminate
        if !(retirementSettled && !rollback && method == .detachAndTerminate) {
            try finishRetirement(method, report: &report)
        }
        try client.updateAutoScalingGroup(
            group, minSize: journal.minSize, maxSize: journal.maxSize, desiredCapacity: journal.desiredCapacity)
        if !journal.suspendedByKiln.isEmpty { try client.resumeProcesses(group, journal.suspendedByKiln) }
        try RotationJournal.clear(client, group: group)
    }

    /// Takes the journal a group holds: ours to continue (the same pipeline,
    /// or a stale heartbeat), or another live run's (refused, exit 75).
    private func claim(
        _ journal: RotationJournal?, release: ReleaseSpecification?, state: AutoScalingGroup
    ) throws -> RotationJournal? {
        guard var journal else { return nil }
        let age = now().timeIntervalSince(journal.heartbeat)
        let samePipeline = journal.run.split(separator: "/").first == runID.split(separator: "/").first
        if !samePipeline && age < configuration.staleAfter {
            throw KilnError(
                .temporaryFailure,
                """
                \(group): rotation \(journal.run) (release \(journal.release), \
                \(journal.phase)) is under way, its heartbeat \(Int(age))s old; retry when it has finished
                """
            )
        }
        if let release, journal.release != release.digest && !journal.phase.isRollback {
            // A dead run of another release: keep its original sizes and
            // suspended processes, roll our release from its starting version.
            log.warning(
                """
                rotate: taking over the journal of \(journal.run) (release \(journal.release), \
                \(journal.phase), heartbeat \(Int(age))s old) for release \(release.digest)
                """
            )
            let template = try launchTemplate(of: state)
            journal.toVersion = try createVersion(template: template.id, from: journal.fromVersion, release: release)
            journal.release = release.digest
            // Its batches (or its last phase) were another release's: this one starts its own.
            journal.phase = .starting
            journal.soak = nil
        } else {
            log.line("rotate: continuing rotation \(journal.run) (\(journal.phase), heartbeat \(Int(age))s old)")
        }
        journal.run = runID
        journal.heartbeat = now()
        try journal.save(client, group: group)
        return journal
    }

    private func createVersion(template: String, from version: Int, release: ReleaseSpecification) throws -> Int {
        let source = try client.describeLaunchTemplateVersions(.id(template), versions: ["\(version)"]).first
        var tags = source?.instanceTags ?? [:]
        tags[KilnTag.release] = release.digest
        tags[KilnTag.application] = release.application
        tags[KilnTag.legacyApplication] = nil
        tags[KilnTag.version] = release.version
        let created = try client.createLaunchTemplateVersion(
            .id(template), sourceVersion: "\(version)", imageID: release.amiID, userData: release.userData,
            instanceTags: tags,
            versionDescription: "kiln \(release.application) \(release.version) (\(release.digest))")
        log.line(
            """
            rotate: launch template \(template) version \(created.versionNumber): \
            \(release.amiID), user data \(release.userDataSHA256.prefix(12))
            """
        )
        return created.versionNumber
    }

    /// The release a launch template version launches: its instances' `kiln:release` tag, else its AMI.
    func versionRelease(_ template: String, _ version: Int) throws -> String {
        guard let found = try client.describeLaunchTemplateVersions(.id(template), versions: ["\(version)"]).first
        else {
            throw KilnError.badConfiguration("launch template \(template) has no version \(version)")
        }
        return found.instanceTags[KilnTag.release] ?? "image:\(found.imageID ?? "unknown")"
    }

    func launchTemplate(of state: AutoScalingGroup) throws -> (id: String, version: String) {
        guard let template = state.launchTemplate, let id = template.id ?? template.name.map({ $0 }) else {
            throw KilnError.badConfiguration(
                "\(group) has no launch template (launch configurations cannot be rolled by Kiln)")
        }
        if template.id == nil, let name = template.name {
            guard let found = try client.describeLaunchTemplates(names: [name]).first else {
                throw KilnError.badConfiguration("\(group): launch template \(name) not found")
            }
            return (found.id, template.version ?? "$Default")
        }
        return (id, template.version ?? "$Default")
    }

    func numericVersion(_ template: (id: String, version: String)) throws -> Int {
        guard let version = Int(template.version) else {
            throw KilnError.badConfiguration(
                """
                \(group) uses launch template \(template.id) at '\(template.version)', which cannot be rolled back: \
                point it at a version number (in Terraform: version = aws_launch_template.x.latest_version)
                """)
        }
        return version
    }

    /// The plan for the group as it stands.
    func plan(
        state: AutoScalingGroup, instances: [ObservedInstance], release: String, warmPool: WarmPool?,
        retirement: RetirementChoice
    ) -> RotationPlan {
        RotationPlan.make(
            configuration: configuration, state: state, instances: instances, release: release, warmPool: warmPool,
            retirement: retirement)
    }

    /// A journal written before Kiln retired in bulk names no method: chosen from the group now.
    func chooseRetirement(_ journal: inout RotationJournal) throws {
        if journal.retirement == nil { journal.retirement = try retirementChoice().method }
    }

    /// The group's warm pool, if it has one (a plan refusal: `GroupRefusals`):
    /// in the group's own DescribeAutoScalingGroups answer (moto returns it
    /// there too once PutWarmPool made one), so no DescribeWarmPool.
    func warmPool(of state: AutoScalingGroup) -> WarmPool? { state.warmPool }
}
