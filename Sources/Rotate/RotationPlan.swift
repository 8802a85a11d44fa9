import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// What a rotation will do, worked out before it changes anything: the
/// batches, the group's size at each step, the largest size it needs, the
/// checks that gate, and the AWS calls it expects.
public struct RotationPlan: Sendable, CustomStringConvertible {
    public var group: String
    public var strategy: RotationStrategy
    public var desired: Int
    public var minSize: Int
    public var maxSize: Int
    public var old: Int
    public var new: Int
    /// Instances launched in each batch.
    public var batches: [Int]
    public var largestGroup: Int
    /// The group cannot grow (at its max, `raise_max_size: false`): each
    /// batch terminates up to `maxUnavailable` old instances first.
    public var terminateFirst = false
    public var maxUnavailable = 0
    public var checks: [String]
    public var expectedCalls: [String: Int]
    public var problems: [String]
    /// Where the checkpoints stop the rotation, and for how long.
    public var checkpointStops: [Checkpoints.Stop] = []
    public var checkpointSoak: TimeInterval = 0
    /// How each batch's old instances are retired, and why (the group's termination hooks).
    var retirement = RetirementChoice(hooks: [])

    static func make(
        configuration: RotateConfiguration, state: AutoScalingGroup, instances: [ObservedInstance], release: String,
        warmPool: WarmPool? = nil, retirement: RetirementChoice = RetirementChoice(hooks: [])
    ) -> RotationPlan {
        let live = instances.filter { !$0.lifecycleState.isTerminating }
        let old = live.filter { $0.release != release }.count
        let new = live.count - old
        let batches = RolloutSchedule(
            strategy: configuration.strategy, batch: configuration.batch, desired: state.desiredCapacity,
            toReplace: old
        ).batches
        let largest = state.desiredCapacity + (batches.max() ?? 0)
        var checks = ["Auto Scaling InService and Healthy"]
        if !state.targetGroupARNs.isEmpty { checks.append("healthy in \(state.targetGroupARNs.count) target group(s)") }
        if let url = configuration.health.url {
            checks.append("HTTP \(url) answers 2xx\(configuration.health.expectBody.map { " holding '\($0)'" } ?? "")")
        }
        let cadence =
            configuration.health.url == nil
            ? "polls every \(LogWriter.formatDuration(configuration.health.poll))"
            : """
            AWS polled every \(LogWriter.formatDuration(configuration.health.poll)), the HTTP probe every \
            \(LogWriter.formatDuration(min(configuration.health.probeInterval, configuration.health.poll)))
            """
        checks.append(
            """
            \(configuration.health.consecutive) passing checks in a row (\(cadence)), \
            \(configuration.health.unhealthyThreshold) failed in a row to fail one that passed, \
            after a grace of \(LogWriter.formatDuration(configuration.health.grace)); \
            \(LogWriter.formatDuration(configuration.health.timeout)) per batch
            """
        )
        if !configuration.health.alarms.isEmpty {
            checks.append(
                "CloudWatch alarms not in ALARM, once a poll: " + configuration.health.alarms.joined(separator: ", "))
        }
        let pollsPerBatch = max(
            1,
            Int(
                (Double(configuration.health.consecutive) + configuration.health.grace / configuration.health.poll)
                    .rounded(.up)) + 1)
        let polls = pollsPerBatch * max(1, batches.count)
        var calls: [String: Int] = [
            "ec2:CreateLaunchTemplateVersion": 1,
            // The version's instance tags, which the new version keeps.
            "ec2:DescribeLaunchTemplateVersions": 1,
            // The new version, the max size raised and the first batch in one; the sizes restored.
            "autoscaling:UpdateAutoScalingGroup": 2,
            "autoscaling:SetDesiredCapacity": max(0, batches.count - 1),
            "autoscaling:DescribeAutoScalingGroups": polls + 2,
            "autoscaling:DescribeLifecycleHooks": 1,
            "ec2:DescribeInstances": batches.count + 1,
            // The journal: at the start, a batch's phase, the last phase (with kiln:last-rotation).
            "autoscaling:CreateOrUpdateTags": batches.count + 2,
            "autoscaling:DeleteTags": 1,
        ]
        if !state.suspendedProcesses.contains("AZRebalance") || !configuration.suspend.isEmpty {
            calls["autoscaling:SuspendProcesses"] = 1
            calls["autoscaling:ResumeProcesses"] = 1
        }
        if !configuration.health.alarms.isEmpty {
            // One more before anything changes: every alarm exists.
            calls["cloudwatch:DescribeAlarms"] =
                (polls + 1) * Int((Double(configuration.health.alarms.count) / 100).rounded(.up))
        }
        if !state.targetGroupARNs.isEmpty {
            calls["elasticloadbalancing:DescribeTargetHealth"] = (polls + 1) * state.targetGroupARNs.count
        }

        var problems = GroupRefusals.problems(state: state, instances: instances, warmPool: warmPool)
        let protected = live.filter { $0.release != release && $0.protectedFromScaleIn }.count
        // Calls a batch, whatever its size (issue 16, item 3).
        switch retirement.method {
        case .scaleIn:
            // Protection on the batch's new instances, the desired capacity
            // lowered; the protection lifted once at the end.
            calls["autoscaling:SetInstanceProtection"] = batches.count + (protected > 0 ? batches.count : 0) + 1
            calls["autoscaling:SetDesiredCapacity"] = 2 * batches.count - 1
            if protected > 0 {
                checks.append(
                    "\(protected) old instance(s) scale-in protected: the protection is removed as each is retired")
            }
            if configuration.suspend.contains("Terminate") {
                problems.append(
                    """
                    suspend lists Terminate, but \(state.name) has a termination lifecycle hook: its old \
                    instances are retired by the group's own scale-in, which Terminate would stop
                    """
                )
            }
        case .detachAndTerminate:
            // The tag that names detached instances (once, for every old
            // instance), the detach (20 a call), one termination a batch. A
            // batch followed by one of its size, with no pause between, is
            // detached without the decrement and so launches that one
            // (`Rollout.launchReplacing`): no SetDesiredCapacity for it.
            calls["ec2:CreateTags"] = 1
            calls["autoscaling:DetachInstances"] = batches.map { ($0 + 19) / 20 }.reduce(0, +)
            calls["ec2:TerminateInstances"] = batches.count
            let paused = Set(
                (configuration.strategy == .canary && configuration.canarySoak > 0 ? [1] : [])
                    + (configuration.checkpoints?.stops(batches: batches).map(\.afterBatch) ?? []))
            let launchedByDetach = zip(batches.indices, zip(batches, batches.dropFirst())).filter {
                $1.0 == $1.1 && !paused.contains($0 + 1)
            }.count
            calls["autoscaling:SetDesiredCapacity", default: 0] -= launchedByDetach
        }
        if state.usesMixedInstancesPolicy {
            checks.append("mixed instances policy: the new version goes into the policy's launch template")
        }
        if live.isEmpty || state.desiredCapacity == 0 {
            problems.append(
                """
                \(state.name) has no instances: there is nothing to roll (scale it up, \
                or let Terraform create the release)
                """
            )
        }
        // A group that cannot grow, with room to go below: terminate first,
        // never more than max_unavailable below the start.
        let terminateFirst =
            largest > state.maxSize && !configuration.raiseMaxSize && configuration.maxUnavailable > 0
        if largest > state.maxSize && !configuration.raiseMaxSize && !terminateFirst {
            problems.append(
                """
                the surge needs \(largest) instances but \(state.name)'s max size is \(state.maxSize) \
                and raise_max_size is false
                """
            )
        }
        if configuration.maxUnavailable >= max(1, state.desiredCapacity) {
            problems.append("max_unavailable \(configuration.maxUnavailable) would let every instance go")
        }
        var plan = RotationPlan(
            group: state.name, strategy: configuration.strategy, desired: state.desiredCapacity, minSize: state.minSize,
            maxSize: state.maxSize, old: old, new: new, batches: batches,
            largestGroup: terminateFirst ? state.maxSize : largest, terminateFirst: terminateFirst,
            maxUnavailable: configuration.maxUnavailable, checks: checks,
            expectedCalls: calls, problems: problems)
        if let checkpoints = configuration.checkpoints {
            plan.checkpointStops = checkpoints.stops(batches: batches)
            plan.checkpointSoak = checkpoints.soak
        }
        plan.retirement = retirement
        return plan
    }

    /// Refuses a plan that cannot work (exit 78), before anything changes.
    func check() throws {
        guard problems.isEmpty else {
            throw KilnError.badConfiguration("cannot rotate \(group): \(problems.joined(separator: "; "))")
        }
    }

    public var description: String {
        var lines = [
            "plan for \(group): \(strategy.rawValue), \(old) instance(s) to replace, \(new) already on the release"
        ]
        lines.append("  sizes now: min \(minSize), max \(maxSize), desired \(desired)")
        if terminateFirst {
            lines.append(
                "  \(group) cannot grow (max size \(maxSize), raise_max_size false): each batch terminates up to "
                    + "\(maxUnavailable) old first (max_unavailable), launches as many, waits for the gate; "
                    + "healthy capacity never below \(desired - maxUnavailable)")
        }
        for (index, size) in batches.enumerated() {
            let room = max(0, maxSize - desired)
            let intoRoom = room > 0 ? " (launching \(room) first, into the room)" : ""
            lines.append(
                terminateFirst
                    ? "  batch \(index + 1) of \(batches.count): replace \(size): terminate first, up to "
                        + "\(maxUnavailable) at a time (group \(desired - maxUnavailable)), launch as many "
                        + "(group \(desired)), wait for the gate\(intoRoom)"
                    : "  batch \(index + 1) of \(batches.count): launch \(size) (group \(desired + size)), "
                        + "wait for the gate, retire \(size) old (group \(desired))"
            )
            for stop in checkpointStops where stop.afterBatch == index + 1 {
                lines.append(
                    """
                      checkpoint \(stop.label) (\(stop.replaced) of \(stop.total) replaced): \
                    soak \(LogWriter.formatDuration(checkpointSoak)), the gate still watching
                    """
                )
            }
        }
        lines.append("  retirement: " + retirement.explanation)
        lines.append(
            "  largest group: \(largestGroup)"
                + (largestGroup > maxSize ? " (max size raised from \(maxSize) for the run, then restored)" : "")
        )
        lines.append("  checks: " + checks.joined(separator: "; "))
        lines.append(
            "  AWS calls expected: "
                + expectedCalls.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        if !problems.isEmpty { lines.append("  refused: " + problems.joined(separator: "; ")) }
        return lines.joined(separator: "\n")
    }
}
