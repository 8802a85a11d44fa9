import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// The fault proxy's control API (scripts/standins/faults.py): what it
/// injects from now on, for which actions.
func configureFaults(_ proxy: StandIn, _ settings: [String: Any]) throws {
    let body = try JSONSerialization.data(withJSONObject: settings)
    let answer = try HTTPClient(settings: HTTPSettings()).send(
        HTTPRequest(method: "POST", url: proxy.url + "/__kiln_faults/config", body: body))
    #expect(answer.status == 200)
}

/// Issue 16, item 6: every way a run ends leaves the report and either a
/// finished rotation or a journal the next run finishes; logs say only what
/// AWS confirmed; the report's figures are true after a resume or a rollback.
@Suite struct RotateFailurePathTests {
    /// Auto Scaling throttles every ResumeProcesses: the run ends with 75
    /// (GitLab's `retry: exit_codes: [75]` fires), writes the report as
    /// `interrupted`, and keeps the journal; the retry finishes the last phase.
    @Test func aFailureInTheLastPhaseIsReportedAndFinishedByTheNextRun() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try withStandIn("faults", ["--upstream", world.moto.url]) { proxy in
            try configureFaults(proxy, ["throttle": 1.0, "only_actions": ["ResumeProcesses"]])
            let environment = ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2"]
            let (code, output) = try world.rotate([], environment: environment)
            #expect(code == 75, "\(output)")
            let json = world.rotation
            #expect(json["outcome"] as? String == "interrupted", "\(json)")
            #expect((json["failure"] as? String ?? "").contains("ResumeProcesses"))
            #expect((json["launched"] as? [Any])?.count == 2)
            #expect(try world.groupState().tags["kiln:rotation:phase"] == "finishing")
            try configureFaults(proxy, ["throttle": 0.0])
            let (again, againOutput) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
            #expect(again == 0, "\(againOutput)")
            #expect(world.rotation["outcome"] as? String == "deployed")
        }
        try world.expectSettled(desired: 2, ami: ami, version: "2")
    }

    /// Every DetachInstances fails (HTTP 500, its effect unknown: it is sent
    /// once): the run reads the group back and tries again under the retry
    /// policy, then stops with 75, never claiming a detach or a termination.
    @Test func aTerminationThatFailsIsNeverLoggedAsDone() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try withStandIn("faults", ["--upstream", world.moto.url]) { proxy in
            try configureFaults(
                proxy, ["error5xx": 1.0, "only_actions": ["DetachInstances"]])
            let environment = ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "3"]
            let (code, output) = try world.rotate([], environment: environment)
            #expect(code == 75, "\(output)")
            #expect(!output.contains("terminated i-"), "\(output)")
            #expect(!output.contains("detached i-"), "\(output)")
            #expect(output.contains("detaching from \(world.group) failed"), "\(output)")
            #expect(world.rotation["outcome"] as? String == "interrupted")
            #expect((world.rotation["terminated"] as? [String]) == [])
            // Fewer faults: the same call failing now and then is retried within the run.
            try configureFaults(proxy, ["error5xx": 0.5, "seed": 3])
            let (again, againOutput) = try world.rotate(
                [], environment: environment.merging(["CI_JOB_ID": "71"]) { $1 })
            #expect(again == 0, "\(againOutput)")
        }
        try world.expectSettled(desired: 2, ami: ami, version: "2")
    }

    /// GitLab cancels the job (SIGTERM) mid-batch: the report says
    /// `interrupted` with what was known, the exit is 143, and the next run
    /// finishes the rotation.
    @Test func aCancelledRunWritesItsReport() throws {
        let world = try RotateWorld(desired: 4)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 1.5)
        try world.prepare(ami: ami)
        let child = try world.startRotate()
        #expect(try eventually { try world.groupState().desiredCapacity > 4 })
        kill(child.pid, SIGTERM)
        #expect(child.wait() == .exited(143))
        #expect(world.rotation["outcome"] as? String == "interrupted", "\(world.rotation)")
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
        #expect(code == 0, "\(output)")
        try world.expectSettled(desired: 4, ami: ami, version: "2")
    }

    /// `--no-rollback`: the report is written too, as `left`.
    @Test func aRunLeftForAPersonWritesItsReport() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "never")
        try world.prepare(ami: ami)
        try """
        environments:
          test:
            rotate:
              auto_scaling_group: \(world.group)
              health:
                url: http://{private_ip}:\(world.healthPort)/health
                poll: 0.2s
                timeout: 2s

        """
        .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let (code, output) = try world.rotate(["--no-rollback"])
        #expect(code == 69, "\(output)")
        let json = world.rotation
        #expect(json["outcome"] as? String == "left", "\(json)")
        #expect((json["failure"] as? String ?? "").contains("HTTP 503"))
    }

    /// Killed in its second batch and resumed: the resumed run numbers on
    /// (no second `batch 1 of 3`), and the lowest healthy count it reports
    /// is the capacity that served throughout.
    @Test func aResumedRunNumbersBatchesOnAndCountsWhatServed() throws {
        let world = try RotateWorld(desired: 6)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 1)
        try world.prepare(ami: ami)
        let child = try world.startRotate()
        #expect(try eventually { (try world.groupState().tags["kiln:rotation:phase"] ?? "").hasPrefix("rolling 2/") })
        kill(child.pid, SIGKILL)
        _ = child.wait()
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
        #expect(code == 0, "\(output)")
        #expect(!output.contains("batch 1 of"), "\(output)")
        #expect(output.contains("batch 3 of 3"), "\(output)")
        #expect((world.rotation["lowestHealthy"] as? Int ?? 0) >= 6, "\(world.rotation)")
        // The picture shows the whole rotation: the batches the killed run started too.
        let svg = world.read("kiln/rotation-test.svg") ?? ""
        for batch in ["rolling 1/3", "rolling 2/3", "rolling 3/3"] {
            #expect(svg.contains("batch started at") && svg.contains(": \(batch)</title>"), "\(batch) missing")
        }
        let kept = world.read("kiln/rotation-test.timeline.json") ?? ""
        #expect(kept.contains("\"7/70\"") && kept.contains("\"7/71\""), "both runs' samples kept")
        try world.expectSettled(desired: 6, ami: ami, version: "2")
    }

    /// Killed 5 s into the canary's 20 s soak: the resumed run holds the
    /// canary for the rest of the soak (the journal records when it began),
    /// not for none of it and not for all of it again. A checkpoint's soak
    /// is the same pause of the rollout (`Rollout.pauses`).
    @Test func aSoakCutByAKillIsWaitedOutOnResumeForWhatRemains() throws {
        let world = try RotateWorld(desired: 3)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "      strategy: canary\n      canary_soak: 20s")
        let child = try world.startRotate()
        // The canary through the gate and one old instance retired: the soak has begun.
        var soakSeen = Date()
        #expect(
            try eventually {
                soakSeen = Date()
                let state = try world.groupState()
                let onRelease = try world.imagesOfGroup().filter { $0 == ami }.count
                return state.desiredCapacity == 3 && state.instances.count == 3 && onRelease == 1
            })
        Thread.sleep(forTimeInterval: 5)
        kill(child.pid, SIGKILL)
        _ = child.wait()
        let resumed = Date()
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("began in an earlier run"), "\(output)")
        // When the resumed run first saw batch 2's instances: after the soak's end, well before a whole new soak.
        let firstSeen = (world.rotation["launched"] as? [[String: Any]] ?? []).compactMap {
            $0["firstSeenSeconds"] as? Double
        }
        let batchTwoSeen = resumed.addingTimeInterval(firstSeen.max() ?? 0)
        // The slack: how late the test saw the soak begin, and the resumed process's start.
        #expect(batchTwoSeen >= soakSeen.addingTimeInterval(20 - 3), "\(firstSeen), soak seen at \(soakSeen)")
        #expect((firstSeen.max() ?? 99) < 20 - 1, "a whole soak again: \(firstSeen)")
        try world.expectSettled(desired: 3, ami: ami, version: "2")
    }

    /// Rolled back: the old instances checked again are not "launched", and
    /// the lowest healthy count is the old capacity that served throughout.
    @Test func aRollbackReportsWhatServedAndLaunchesNothingItDidNot() throws {
        let world = try RotateWorld(desired: 3)
        let before = Set(try world.groupState().instances.map(\.id))
        let ami = try world.makeAMI(health: "never")
        try world.prepare(ami: ami)
        try """
        environments:
          test:
            rotate:
              auto_scaling_group: \(world.group)
              batch: 1
              health:
                url: http://{private_ip}:\(world.healthPort)/health
                poll: 0.2s
                consecutive: 2
                timeout: 2s

        """
        .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let (code, output) = try world.rotate()
        #expect(code == 3, "\(output)")
        let json = world.rotation
        let launched = Set((json["launched"] as? [[String: Any]] ?? []).compactMap { $0["instance"] as? String })
        #expect(launched.isDisjoint(with: before), "old instances listed as launched: \(launched)")
        #expect(json["lowestHealthy"] as? Int == 3, "\(json)")
    }
}

/// Issue 16: a run that stops before the rotation begins changed nothing,
/// and still writes its report (`refused`, with the reason) and picture, so
/// that `artifacts: when: always` has something to show.
@Suite struct RotateRefusalReportTests {
    @Test func badSettingsAreReportedWithoutAGroup() throws {
        let world = try RotateWorld(desired: 1)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "      strategy: sideways")
        let (code, output) = try world.rotate()
        #expect(code == 78, "\(output)")
        world.expectRefusedReport("environments.test.rotate.strategy", group: false)
        #expect(world.rotation["release"] == nil && world.rotation["fromVersion"] == nil, "\(world.rotation)")
        try world.expectUntouched(versions: [1])
        // Terraform outputs are settings too.
        try world.prepare(ami: ami)
        let (outputsCode, outputsOutput) = try world.rotate(
            [], environment: ["KILN_TERRAFORM_OUTPUTS": world.project.file("missing-outputs.json")])
        #expect(outputsCode == 78, "\(outputsOutput)")
        world.expectRefusedReport("Terraform outputs file not found", group: false)
    }

    @Test func aBadArtifactIsReportedWithTheGroup() throws {
        let world = try RotateWorld(desired: 1)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try AtomicFile.write(Data("#!/bin/sh\necho changed\n".utf8), to: world.project.file("kiln/userdata-test.sh"))
        let (code, output) = try world.rotate()
        #expect(code == 65, "\(output)")
        world.expectRefusedReport("its SHA-256 is not the one userdata-test.json records")
        #expect(world.rotation["release"] == nil, "the release was not read: \(world.rotation)")
        try world.expectUntouched(versions: [1])
    }

    /// AWS throttles every read of the group: nothing changed, exit 75 (a
    /// retry of the job can help), the report says so.
    @Test func awsFailingBeforeTheJournalIsAReportedRefusal() throws {
        let world = try RotateWorld(desired: 1)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try withStandIn("faults", ["--upstream", world.moto.url]) { proxy in
            try configureFaults(proxy, ["throttle": 1.0, "only_actions": ["DescribeAutoScalingGroups"]])
            let (code, output) = try world.rotate(
                [], environment: ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2"])
            #expect(code == 75, "\(output)")
        }
        world.expectRefusedReport("DescribeAutoScalingGroups: Throttling")
        #expect(world.rotation["release"] as? String != nil, "\(world.rotation)")
        #expect((world.rotation["calls"] as? [String: Int])?["autoscaling:DescribeAutoScalingGroups"] == 2)
        try world.expectUntouched(versions: [1])
    }
}

/// Issue 16: a group busy with another scaling activity refuses changes
/// with ScalingActivityInProgress (HTTP 400) or ResourceContention (HTTP
/// 500; Amazon EC2 Auto Scaling API Reference, UpdateAutoScalingGroup,
/// "Errors"). The rotation waits it out under the retry policy, and past
/// the attempts stops with 75 and its journal, which the retried job finishes.
@Suite struct RotateBusyGroupTests {
    @Test func aBusyGroupIsWaitedOutThenATemporaryFailureTheRetryFinishes() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try withStandIn("faults", ["--upstream", world.moto.url]) { proxy in
            let environment = ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "3"]
            try configureFaults(
                proxy,
                [
                    "error": ["code": "ScalingActivityInProgress", "status": 400],
                    "only_actions": ["UpdateAutoScalingGroup"],
                ])
            let (code, output) = try world.rotate([], environment: environment)
            #expect(code == 75, "\(output)")
            #expect(output.contains("the group is busy (ScalingActivityInProgress)"), "\(output)")
            #expect(world.rotation["outcome"] as? String == "interrupted", "\(world.rotation)")
            #expect(try world.groupState().tags["kiln:rotation:phase"] != nil, "the journal is kept")
            // Busy twice more, then free: waited out within the run.
            try configureFaults(proxy, ["error": ["code": "ResourceContention", "status": 500, "times": 2]])
            let (again, againOutput) = try world.rotate(
                [], environment: environment.merging(["CI_JOB_ID": "71"]) { $1 })
            #expect(again == 0, "\(againOutput)")
            #expect(againOutput.contains("the group is busy (ResourceContention)"), "\(againOutput)")
        }
        try world.expectSettled(desired: 2, ami: ami, version: "2")
    }
}

/// Issue 16, item 4: a group at its max that may not grow is rolled by
/// terminating first, never more than `max_unavailable` below the start.
@Suite struct RotateCapacityTests {
    @Test func aGroupAtItsMaxTerminatesFirstWithinMaxUnavailable() throws {
        let world = try RotateWorld(desired: 4)
        try world.client.updateAutoScalingGroup(world.group, maxSize: 4)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 0.5)
        try world.prepare(ami: ami, rotate: "      raise_max_size: false\n      max_unavailable: 1")
        let (planCode, plan) = try world.rotate(["plan"])
        #expect(planCode == 0, "\(plan)")
        #expect(plan.contains("terminate first"), "\(plan)")
        let sampler = HealthSampler(world: world)
        let (code, output) = try world.rotate()
        let samples = sampler.stop()
        #expect(code == 0, "\(output)")
        #expect(try world.imagesOfGroup() == Array(repeating: ami, count: 4))
        let state = try world.groupState()
        #expect(state.maxSize == 4 && state.desiredCapacity == 4)
        #expect((world.rotation["largestGroup"] as? Int ?? 99) <= 4, "\(world.rotation)")
        #expect((samples.min() ?? 0) >= 3, "healthy fell below 4 - max_unavailable: \(samples)")
        #expect((world.rotation["lowestHealthy"] as? Int ?? 0) >= 3)
    }
}
