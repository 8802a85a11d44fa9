import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// Bulk retirement (issue 16, item 3): a group with a termination lifecycle
/// hook retires old instances through its own scale-in (new instances
/// protected, desired lowered), waiting while the hook holds them; one
/// without is detached and terminated in a call or two a batch; a run killed
/// between the detach and the termination is finished by the next.
@Suite struct RotateRetirementTests {
    static let terminating = "autoscaling:EC2_INSTANCE_TERMINATING"

    func putTerminationHook(_ world: RotateWorld, name: String = "drain") throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", world.group)
        parameters.add("LifecycleHookName", name)
        parameters.add("LifecycleTransition", Self.terminating)
        parameters.add("HeartbeatTimeout", 600)
        parameters.add("DefaultResult", "CONTINUE")
        _ = try world.client.query(.autoscaling, "PutLifecycleHook", parameters, mutation: .idempotent)
    }

    @Test func aGroupWithATerminationHookRetiresByScaleInAndWaitsWhileTheHookHoldsThem() throws {
        let world = try RotateWorld(desired: 4)
        try putTerminationHook(world)
        let old = Set(try world.groupState().instances.map(\.id))
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let (planCode, plan) = try world.rotate(["plan"])
        #expect(planCode == 0, "\(plan)")
        #expect(plan.contains("retirement: scale-in (termination lifecycle hook drain)"), "\(plan)")

        let run = BackgroundRotation(world)
        // The hook's own work: each old instance, once it has waited a while
        // in Terminating:Wait, is let go; meanwhile the rotation must be
        // waiting for it, its journal still on the group.
        var held: [String: Date] = [:]
        var completed: Set<String> = []
        var journalWhileHeld = true
        var newProtectedWhileRolling = false
        while run.result == nil {
            let state = try world.groupState()
            if state.instances.contains(where: { !old.contains($0.id) && $0.protectedFromScaleIn }) {
                newProtectedWhileRolling = true
            }
            for instance in state.instances where instance.lifecycleState == .terminatingWait {
                #expect(old.contains(instance.id), "a new instance was scaled in: \(instance.id)")
                let since = held[instance.id] ?? Date()
                held[instance.id] = since
                guard Date().timeIntervalSince(since) > 1.5, !completed.contains(instance.id) else { continue }
                let journalled = try world.groupState().tags["kiln:rotation:run"] != nil
                journalWhileHeld = journalWhileHeld && journalled
                try world.client.completeLifecycleAction(
                    world.group, hookName: "drain", instanceID: instance.id, result: .proceed)
                completed.insert(instance.id)
            }
            usleep(100_000)
        }
        let (code, output) = run.result!
        #expect(code == 0, "\(output)")
        #expect(Set(held.keys) == old, "every old instance waited on the hook: \(held.keys.sorted())")
        #expect(journalWhileHeld, "the rotation finished while the hook held an instance")
        #expect(newProtectedWhileRolling, "new instances were not protected while old ones were scaled in")
        #expect(output.contains("a lifecycle hook holds it"), "\(output)")
        #expect(output.contains("waiting for 4 retired instance(s) to leave"), "\(output)")
        try world.expectSettled(desired: 4, ami: ami, version: "2")
        let after = try world.groupState()
        #expect(after.instances.allSatisfy { !$0.protectedFromScaleIn }, "protection lifted at the end")
        let json = world.rotation
        #expect(json["retirement"] as? String == "scale-in")
        #expect(Set(json["terminated"] as? [String] ?? []) == old)
        let calls = json["calls"] as? [String: Int] ?? [:]
        // Two batches: a launch and a lowering each, the first launch in the
        // UpdateAutoScalingGroup that sets the new version (the other restores
        // the sizes); protection set per batch, lifted once.
        #expect(calls["autoscaling:SetDesiredCapacity"] == 3, "\(calls)")
        #expect(calls["autoscaling:UpdateAutoScalingGroup"] == 2, "\(calls)")
        #expect(calls["autoscaling:SetInstanceProtection"] == 3, "\(calls)")
        #expect(calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == nil, "\(calls)")
        #expect(calls["autoscaling:DetachInstances"] == nil, "\(calls)")
    }

    @Test func aGroupThatProtectsNewInstancesKeepsItsProtection() throws {
        let world = try RotateWorld(desired: 2)
        try putTerminationHook(world)
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", world.group)
        parameters.add("NewInstancesProtectedFromScaleIn", true)
        _ = try world.client.query(.autoscaling, "UpdateAutoScalingGroup", parameters, mutation: .idempotent)
        let old = try world.groupState().instances.map(\.id)
        try world.client.setInstanceProtection(world.group, old, protected: true)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let run = BackgroundRotation(world)
        while run.result == nil {
            for instance in try world.groupState().instances where instance.lifecycleState == .terminatingWait {
                try world.client.completeLifecycleAction(
                    world.group, hookName: "drain", instanceID: instance.id, result: .abandon)
            }
            usleep(100_000)
        }
        let (code, output) = run.result!
        #expect(code == 0, "\(output)")
        #expect(output.contains("removed scale-in protection from \(old.sorted().joined(separator: ", "))"))
        try world.expectSettled(desired: 2, ami: ami, version: "2")
        #expect(try world.groupState().instances.allSatisfy(\.protectedFromScaleIn), "the user's protection kept")
    }

    @Test func killedBetweenTheDetachAndTheTerminationTheNextRunTerminatesThem() throws {
        let world = try RotateWorld(desired: 2)
        let old = Set(try world.groupState().instances.map(\.id))
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        // Every TerminateInstances fails (and is retried): the run is held
        // between its detach and its termination, where it is killed.
        try withStandIn(
            "faults", ["--upstream", world.moto.url, "--error5xx", "1", "--only-actions", "TerminateInstances"]
        ) { proxy in
            let child = try world.startRotate(
                [], environment: ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "40"])
            let detached = try eventually(90) {
                let members = Set(try world.groupState().instances.map(\.id))
                let running = try world.client.describeInstances(instanceIDs: Array(old)).filter {
                    $0.state == .running && !members.contains($0.id) && $0.tags["kiln:retiring"] == world.group
                }
                return running.count == old.count
            }
            kill(child.pid, SIGKILL)
            _ = child.wait()
            #expect(detached, "the old instances were never detached and left running")
        }
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("detached from \(world.group) by an earlier run and not terminated"), "\(output)")
        try world.expectSettled(desired: 2, ami: ami, version: "2")
        let states = try world.client.describeInstances(instanceIDs: Array(old)).map(\.state)
        #expect(
            states.allSatisfy { $0 == .terminated || $0 == .shuttingDown }, "old instances left: \(states)")
        #expect(Set(world.rotation["terminated"] as? [String] ?? []) == old)
    }

    /// Batch 1's old instances are detached without the decrement (the group
    /// launches batch 2 in their place, `Rollout.launchReplacing`); killed
    /// before their TerminateInstances, the next run finds them by their
    /// `kiln:retiring` tag outside the group, terminates them, and finishes.
    @Test func killedBetweenADetachThatLaunchesTheNextBatchAndItsTerminationTheNextRunFinishes() throws {
        let world = try RotateWorld(desired: 4)
        let old = Set(try world.groupState().instances.map(\.id))
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        var desiredAfterDetach: Int?
        var detachedFirst: Set<String> = []
        try withStandIn(
            "faults", ["--upstream", world.moto.url, "--error5xx", "1", "--only-actions", "TerminateInstances"]
        ) { proxy in
            let child = try world.startRotate(
                [], environment: ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "40"])
            let detached = try eventually(90) {
                let state = try world.groupState()
                let members = Set(state.instances.map(\.id))
                let running = try world.client.describeInstances(instanceIDs: Array(old)).filter {
                    $0.state == .running && !members.contains($0.id) && $0.tags["kiln:retiring"] == world.group
                }
                guard !running.isEmpty else { return false }
                desiredAfterDetach = state.desiredCapacity
                detachedFirst = Set(running.map(\.id))
                return true
            }
            kill(child.pid, SIGKILL)
            _ = child.wait()
            #expect(detached, "no old instance was detached")
        }
        // Batch 1 (2 of 4) detached with the desired capacity kept at the
        // surge's 6: the group launched batch 2 in their place.
        #expect(detachedFirst.count == 2, "\(detachedFirst)")
        #expect(desiredAfterDetach == 6, "desired after the first detach: \(String(describing: desiredAfterDetach))")
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "72"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("detached from \(world.group) by an earlier run and not terminated"), "\(output)")
        try world.expectSettled(desired: 4, ami: ami, version: "2")
        let states = try world.client.describeInstances(instanceIDs: Array(old)).map(\.state)
        #expect(states.allSatisfy { $0 == .terminated || $0 == .shuttingDown }, "old instances left: \(states)")
        #expect(detachedFirst.isSubset(of: Set(world.rotation["terminated"] as? [String] ?? [])))
    }
}

/// kiln-rotate run on a thread of its own while the test plays the hook.
final class BackgroundRotation: @unchecked Sendable {
    private let lock = NSLock()
    private var finished: (code: Int32?, output: String)?

    init(_ world: RotateWorld) {
        Thread.detachNewThread { [self] in
            let result = (try? world.rotate()) ?? (nil, "kiln-rotate did not run")
            lock.withLock { finished = result }
        }
    }

    var result: (code: Int32?, output: String)? { lock.withLock { finished } }
}

/// Item 3's last sentence: each poll is one DescribeAutoScalingGroups, one
/// DescribeInstances only for instances not seen before, one
/// DescribeTargetHealth per target group; the journal is written on phase
/// changes and heartbeats only. Counted by the fault proxy (no faults), as
/// scripts/bench/rotate.py counts, at 20 and at 60 instances in 4 batches:
/// nothing but the polls (whose number follows the time a batch takes,
/// not its size) may differ.
@Suite struct RotateCallShapeTests {
    func calls(desired: Int) throws -> (calls: [String: Int], batches: Int, seconds: Double, targetGroups: Int) {
        let world = try RotateWorld(desired: desired)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 0.3)
        try world.prepare(ami: ami)
        let yml = try #require(world.read("kiln.yml"))
        // A batch of 15 is probed one instance after another: on a loaded
        // machine the world's 20 s gate is not enough (this counts calls, not time).
        try yml.replacingOccurrences(of: "batch: 2\n", with: "batch: 25%\n")
            .replacingOccurrences(of: "timeout: 20s\n", with: "timeout: 180s\n")
            .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let targetGroups = try world.groupState().targetGroupARNs.count
        return try withStandIn("faults", ["--upstream", world.moto.url]) { proxy in
            let (code, output) = try world.rotate([], environment: ["AWS_ENDPOINT_URL": proxy.url])
            #expect(code == 0, "\(output)")
            let stats =
                try JSONSerialization.jsonObject(
                    with: HTTPClient(settings: HTTPSettings()).send(
                        HTTPRequest(url: proxy.url + "/__kiln_faults/stats")
                    ).body) as? [String: Any] ?? [:]
            var calls: [String: Int] = [:]
            for (service, actions) in stats["calls"] as? [String: [String: Int]] ?? [:] {
                for (action, count) in actions { calls["\(service):\(action)"] = count }
            }
            let json = world.rotation
            return (calls, json["batches"] as? Int ?? 0, json["durationSeconds"] as? Double ?? 0, targetGroups)
        }
    }

    /// The budget (README, kiln-rotate: how many calls): at the start one
    /// DescribeLifecycleHooks, no DescribeWarmPool (the group's own answer
    /// says), one DescribeLaunchTemplateVersions and one
    /// CreateLaunchTemplateVersion, one SuspendProcesses, one CreateTags for
    /// every old instance, one UpdateAutoScalingGroup for the new version
    /// and the first batch; per batch one DetachInstances (20 ids a call:
    /// 15 fit) that launches the next batch, so no SetDesiredCapacity, and
    /// one TerminateInstances; at the end one UpdateAutoScalingGroup, one
    /// ResumeProcesses and one DeleteTags.
    static let fixed: [String: Int] = [
        "autoscaling:DescribeLifecycleHooks": 1, "autoscaling:DescribeWarmPool": 0,
        "ec2:DescribeLaunchTemplateVersions": 1, "ec2:CreateLaunchTemplateVersion": 1,
        "autoscaling:SuspendProcesses": 1, "ec2:CreateTags": 1, "autoscaling:UpdateAutoScalingGroup": 2,
        "autoscaling:DetachInstances": 4, "autoscaling:SetDesiredCapacity": 0, "ec2:TerminateInstances": 4,
        "autoscaling:ResumeProcesses": 1, "autoscaling:DeleteTags": 1,
    ]

    @Test func callsPerBatchDoNotGrowWithTheGroup() throws {
        let small = try calls(desired: 20)
        let large = try calls(desired: 60)
        #expect(small.batches == 4 && large.batches == 4)
        for run in [small, large] {
            for (action, count) in Self.fixed {
                #expect(run.calls[action] ?? 0 == count, "\(action): \(run.calls)")
            }
        }
        let polls = ["autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetHealth"]
        let journal = "autoscaling:CreateOrUpdateTags"
        for action in Set(small.calls.keys).union(large.calls.keys) where !polls.contains(action) && action != journal {
            #expect(small.calls[action] == large.calls[action], "\(action): \(small.calls) vs \(large.calls)")
        }
        for run in [small, large] {
            let polled = run.calls["autoscaling:DescribeAutoScalingGroups"] ?? 0
            // One DescribeTargetHealth per target group a poll (the last
            // phase's read of the group is not a poll).
            #expect(
                (run.calls["elasticloadbalancing:DescribeTargetHealth"] ?? 0) <= polled * run.targetGroups,
                "\(run.calls)")
            #expect((run.calls["ec2:DescribeInstances"] ?? 0) <= polled, "\(run.calls)")
            // The journal: written when the run starts, once a batch, at the
            // last phase (with kiln:last-rotation), plus the heartbeats (one per 20 s).
            let heartbeats = Int(run.seconds / 20)
            #expect((run.calls[journal] ?? 0) <= 2 + run.batches + heartbeats, "\(run.calls)")
            // A poll sees each batch, and one more the last batch leave; a batch
            // through the gate at the poll that found it needs no other (the
            // rest follow the time a batch takes: at most one per poll interval).
            let polls = run.calls["autoscaling:DescribeAutoScalingGroups"] ?? 0
            #expect(polls >= 1 + run.batches + 1, "\(run.calls)")
        }
    }
}
