import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Rotate
import Testing

@Suite struct RotateTests {
    @Test func healthyRollingDeployOfSixInBatchesOfTwoNeverDropsCapacity() throws {
        let world = try RotateWorld(desired: 6)
        let before = try world.groupState()
        #expect(before.instances.count == 6)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 0.6)
        try world.prepare(ami: ami)
        let sampler = HealthSampler(world: world)
        let (code, output) = try world.rotate()
        let samples = sampler.stop()
        #expect(code == 0, "\(output)")
        #expect(try world.imagesOfGroup() == Array(repeating: ami, count: 6))
        let after = try world.groupState()
        #expect(after.minSize == before.minSize && after.maxSize == before.maxSize && after.desiredCapacity == 6)
        #expect(after.launchTemplate?.version == "2")
        #expect(after.suspendedProcesses.isEmpty)
        #expect(!after.tags.keys.contains { $0.hasPrefix("kiln:rotation:") }, "journal cleared")
        #expect(after.tags["kiln:last-rotation"] == "1>2")
        #expect(!samples.isEmpty)
        #expect((samples.min() ?? 0) >= 6, "healthy count fell to \(samples.min() ?? -1): \(samples)")
        let json = world.rotation
        #expect(json["outcome"] as? String == "deployed")
        #expect(json["batches"] as? Int == 3)
        #expect((json["terminated"] as? [String])?.count == 6)
        #expect((json["launched"] as? [[String: Any]])?.count == 6)
        let calls = json["calls"] as? [String: Int] ?? [:]
        // Batch 1 is launched by the UpdateAutoScalingGroup that sets the new
        // version (the other restores the sizes), batches 2 and 3 by the
        // detach of the batch before (no decrement): no SetDesiredCapacity.
        #expect(calls["autoscaling:SetDesiredCapacity"] == nil, "\(calls)")
        #expect(calls["autoscaling:UpdateAutoScalingGroup"] == 2, "\(calls)")
        // No termination lifecycle hook: each batch detached in one call and terminated in one.
        #expect(json["retirement"] as? String == "detach-and-terminate")
        #expect(calls["autoscaling:DetachInstances"] == 3, "\(calls)")
        #expect(calls["ec2:TerminateInstances"] == 3, "\(calls)")
        #expect(calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == nil)
        #expect(output.contains("batch 3 of 3"))
        #expect(GitLabDotenv.violations(world.read("kiln/rotation-test.env") ?? "x") == [])
        #expect(world.read("kiln/rotation-test.env")?.contains("KILN_LAUNCH_TEMPLATE_VERSION=2\n") == true)
    }
}

/// Waits (up to `seconds`) for `condition`, polling.
func eventually(_ seconds: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return false
}

extension RotateWorld {
    /// kiln-rotate started in the background, to be killed or raced.
    func startRotate(_ arguments: [String] = [], environment extra: [String: String] = [:]) throws -> ChildProcess {
        var environment = self.environment
        environment.merge(extra) { $1 }
        return try ChildProcess.spawn(
            Command(TestPaths.product("kiln-rotate"), arguments + ["--environment", "test"], environment: environment),
            stdin: .null, stdout: .null, stderr: .null)
    }

    func launchTemplateVersions() throws -> [Int] {
        try client.describeLaunchTemplateVersions(.id(output("test_launch_template_id"))).map(\.versionNumber).sorted()
    }

    /// Every invariant a finished or rolled-back rotation must leave.
    func expectSettled(
        desired: Int, ami: String, version: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let state = try groupState()
        #expect(state.desiredCapacity == desired, sourceLocation: sourceLocation)
        #expect(
            state.minSize == desired && state.maxSize == desired * 2, "sizes \(state.minSize)/\(state.maxSize)",
            sourceLocation: sourceLocation)
        #expect(
            state.suspendedProcesses.isEmpty, "left suspended: \(state.suspendedProcesses)",
            sourceLocation: sourceLocation)
        #expect(
            !state.tags.keys.contains { $0.hasPrefix("kiln:rotation:") }, "journal left: \(state.tags)",
            sourceLocation: sourceLocation)
        #expect(state.launchTemplate?.version == version, sourceLocation: sourceLocation)
        #expect(try imagesOfGroup() == Array(repeating: ami, count: desired), sourceLocation: sourceLocation)
    }
}

@Suite struct RotateStrategyTests {
    @Test func canaryGoesFirstThenRolling() throws {
        let world = try RotateWorld(desired: 3)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "      strategy: canary\n      canary_soak: 1s")
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        #expect(output.contains("canary"))
        #expect(output.contains("soaking for 1.0s"))
        #expect(output.contains("batch 1 of 2: launching 1"))
        #expect(output.contains("batch 2 of 2: launching 2"))
        try world.expectSettled(desired: 3, ami: ami, version: "2")
    }

    @Test func blueGreenLaunchesAFullSecondSet() throws {
        let world = try RotateWorld(desired: 3)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "      strategy: blue-green")
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        #expect(output.contains("batch 1 of 1: launching 3 (desired 6)"))
        #expect(world.rotation["largestGroup"] as? Int == 6)
        try world.expectSettled(desired: 3, ami: ami, version: "2")
    }

    @Test func nothingToDoWhenEveryInstanceIsOnTheRelease() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        #expect(try world.rotate().code == 0)
        let versions = try world.launchTemplateVersions()
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        #expect(output.contains("nothing to do"))
        #expect(world.rotation["outcome"] as? String == "nothing-to-do")
        #expect(try world.launchTemplateVersions() == versions, "no new version")
    }
}

@Suite struct RotateFailureTests {
    @Test func aReleaseThatNeverTurnsHealthyIsRolledBack() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "never")
        try world.prepare(ami: ami, rotate: "")
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
                timeout: 3s

        """
        .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let sampler = HealthSampler(world: world)
        let (code, output) = try world.rotate()
        let samples = sampler.stop()
        #expect(code == 3, "\(output)")
        #expect(output.contains("not healthy after 3.0s"))
        #expect(output.contains("HTTP 503"))
        #expect(output.contains("rolled back"))
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
        #expect((samples.min() ?? 0) >= 2, "old instances kept serving: \(samples)")
        let json = world.rotation
        #expect(json["outcome"] as? String == "rolled-back")
        #expect((json["failure"] as? String ?? "").contains("HTTP 503"))
        #expect(world.read("kiln/rotation-test.env")?.contains("KILN_LAUNCH_TEMPLATE_VERSION=1") == true)
    }

    @Test func aFlappingReleaseIsRolledBack() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "flap", bootDelay: 0, flapPeriod: 0.5)
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
                consecutive: 4
                timeout: 4s

        """
        .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let (code, output) = try world.rotate()
        #expect(code == 3, "\(output)")
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
    }

    @Test func noRollbackLeavesItForAPersonAndRollbackUndoesIt() throws {
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
        #expect(output.contains("--no-rollback"))
        #expect(try world.groupState().tags["kiln:rotation:phase"] == "failed")
        let (undo, undoOutput) = try world.rotate(["rollback"])
        #expect(undo == 0, "\(undoOutput)")
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
    }
}

@Suite struct RotateRollbackByHandTests {
    @Test func rollbackUndoesAFinishedRotation() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        #expect(try world.rotate().code == 0)
        try world.expectSettled(desired: 2, ami: ami, version: "2")
        let (code, output) = try world.rotate(["rollback"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("back on its previous release"))
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
    }
}

@Suite struct RotateResumeTests {
    /// Killed (SIGKILL) at a given point, then run again: it finishes, and
    /// nothing is left suspended, oversized or journalled.
    func killAndResume(
        when point: @escaping (RotateWorld) throws -> Bool, health: String = "healthy", expectCode: Int32 = 0
    ) throws {
        let world = try RotateWorld(desired: 4)
        let ami = try world.makeAMI(health: health, bootDelay: 1.5)
        try world.prepare(ami: ami)
        if health == "never" {
            try """
            environments:
              test:
                rotate:
                  auto_scaling_group: \(world.group)
                  batch: 2
                  health:
                    url: http://{private_ip}:\(world.healthPort)/health
                    poll: 0.2s
                    timeout: 3s

            """
            .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        }
        let child = try world.startRotate()
        let reached = try eventually(60) { try point(world) }
        kill(child.pid, SIGKILL)
        _ = child.wait()
        #expect(reached, "the kill point was never reached")
        // GitLab's retry: the same pipeline, a new job.
        let (code, output) = try world.rotate([], environment: ["CI_JOB_ID": "71"])
        #expect(code == expectCode, "\(output)")
        #expect(output.contains("continuing rotation"))
        if health == "never" {
            try world.expectSettled(desired: 4, ami: world.appAMI, version: "1")
        } else {
            try world.expectSettled(desired: 4, ami: ami, version: "2")
        }
    }

    @Test func killedRightAfterTheJournalIsWritten() throws {
        try killAndResume { world in try world.groupState().tags["kiln:rotation:run"] != nil }
    }

    @Test func killedMidBatch() throws {
        try killAndResume { world in try world.groupState().desiredCapacity > 4 }
    }

    @Test func killedDuringTheSecondBatch() throws {
        try killAndResume { world in (try world.groupState().tags["kiln:rotation:phase"] ?? "").hasPrefix("rolling 2/")
        }
    }

    @Test func killedWhileRollingBack() throws {
        try killAndResume(
            when: { world in try world.groupState().tags["kiln:rotation:phase"] == "rollback" }, health: "never",
            expectCode: 3)
    }

    @Test func aSecondRunWhileOneIsLiveIsRefused() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 3)
        try world.prepare(ami: ami)
        let first = try world.startRotate()
        #expect(try eventually { try world.groupState().tags["kiln:rotation:run"] != nil })
        // The second job has a project folder of its own, as another pipeline's would.
        let second = TemporaryDirectory("kiln-rotate-second")
        try FileManager.default.removeItem(atPath: second.path)
        try FileManager.default.copyItem(atPath: world.project.path, toPath: second.path)
        let (code, output) = try world.rotate(
            [], environment: ["CI_PIPELINE_ID": "8", "CI_JOB_ID": "80", "CI_PROJECT_DIR": second.path])
        #expect(code == 75, "\(output)")
        #expect(output.contains("rotation 7/70"))
        let report =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: second.file("kiln/rotation-test.json")))) as? [String: Any]
        #expect(report?["outcome"] as? String == "refused", "\(report ?? [:])")
        #expect((report?["failure"] as? String ?? "").contains("is under way"))
        #expect(first.wait() == .exited(0))
        try world.expectSettled(desired: 2, ami: ami, version: "2")
    }
}

@Suite struct RotateEnvironmentTests {
    @Test func completesThroughThirtyPercentThrottling() throws {
        let world = try RotateWorld(desired: 4)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try withStandIn("faults", ["--upstream", world.moto.url, "--throttle", "0.3", "--seed", "11"]) { proxy in
            let (code, output) = try world.rotate(
                [], environment: ["AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "12"])
            #expect(code == 0, "\(output)")
            #expect(output.contains("throttled"))
            let calls = world.rotation["calls"] as? [String: Int] ?? [:]
            #expect((calls["autoscaling:DescribeAutoScalingGroups"] ?? 0) > 0)
            let stats =
                try JSONSerialization.jsonObject(
                    with: HTTPClient(settings: HTTPSettings()).send(
                        HTTPRequest(url: proxy.url + "/__kiln_faults/stats")
                    ).body) as? [String: Any]
            #expect(((stats?["faults"] as? [String: Any])?["throttle"] as? [String: Any])?.isEmpty == false)
        }
        try world.expectSettled(desired: 4, ami: ami, version: "2")
    }

    @Test func aGroupAtMaxSizeGetsItRaisedForTheRunAndRestored() throws {
        let world = try RotateWorld(desired: 2)
        try world.client.updateAutoScalingGroup(world.group, maxSize: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        let state = try world.groupState()
        #expect(state.maxSize == 2)
        #expect(world.rotation["largestGroup"] as? Int == 4)
    }

    @Test func thePlanRefusesWhatCannotWorkAndChangesNothing() throws {
        let world = try RotateWorld(desired: 2)
        try world.client.updateAutoScalingGroup(world.group, maxSize: 2)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "      raise_max_size: false")
        let (code, output) = try world.rotate(["plan"])
        #expect(code == 78, "\(output)")
        #expect(output.contains("max size is 2 and raise_max_size is false"))
        let (dry, dryOutput) = try world.rotate(["--dry-run"])
        #expect(dry == 78)
        #expect(dryOutput.contains("batch 1 of 1"))
        let (run, _) = try world.rotate()
        #expect(run == 78)
        #expect(try world.launchTemplateVersions() == [1], "no version created")
        world.expectRefusedReport("max size is 2 and raise_max_size is false")
        // $Latest cannot be rolled back: refused too.
        try world.client.updateAutoScalingGroup(
            world.group, maxSize: 4,
            launchTemplate: LaunchTemplateSpecification(id: world.output("test_launch_template_id"), version: "$Latest")
        )
        let (latest, latestOutput) = try world.rotate(["plan"])
        #expect(latest == 78)
        #expect(latestOutput.contains("'$Latest'"))
    }

    @Test func aGoodPlanPrintsBatchesEnvelopeChecksAndCalls() throws {
        let world = try RotateWorld(desired: 6)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let (code, output) = try world.rotate(["plan"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("6 instance(s) to replace"))
        #expect(output.contains("batch 3 of 3: launch 2 (group 8)"))
        #expect(output.contains("largest group: 8"))
        #expect(output.contains("HTTP http://{private_ip}"))
        #expect(output.contains("2 passing checks in a row"), "\(output)")
        #expect(output.contains("2 failed in a row to fail one that passed"), "\(output)")
        // The calls the run makes (healthyRollingDeployOfSixInBatchesOfTwoNeverDropsCapacity):
        // batch 1 launched with the new version, 2 and 3 by the detach before them.
        #expect(output.contains("autoscaling:SetDesiredCapacity 0"), "\(output)")
        #expect(output.contains("autoscaling:UpdateAutoScalingGroup 2"), "\(output)")
        #expect(output.contains("ec2:CreateTags 1"), "\(output)")
        #expect(!output.contains("DescribeWarmPool"), "\(output)")
        #expect(output.contains("retirement: detach-and-terminate (no termination lifecycle hook)"), "\(output)")
        #expect(output.contains("autoscaling:DetachInstances 3, "), "\(output)")
        #expect(try world.launchTemplateVersions() == [1])
    }
}

/// The tags a new launch template version puts on instances use the one
/// vocabulary (`KilnTag`): `kiln:app`, as images have, not Kiln 0.1.0's
/// `kiln:application`, which is dropped from the version it copies.
@Suite struct RotateTagTests {
    @Test func newInstancesAreTaggedWithTheImagesApplicationTag() throws {
        let world = try RotateWorld(desired: 2)
        let template = world.output("test_launch_template_id")
        let source = try #require(try world.client.describeLaunchTemplateVersions(.id(template), versions: ["1"]).first)
        var legacy = source.instanceTags
        legacy["kiln:application"] = "demo"
        _ = try world.client.createLaunchTemplateVersion(.id(template), sourceVersion: "1", instanceTags: legacy)
        try world.client.updateAutoScalingGroup(
            world.group, launchTemplate: LaunchTemplateSpecification(id: template, version: "2"))
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        // The environment's URL (issue 14): handed to GitLab in the dotenv report.
        let yml = try #require(world.read("kiln.yml"))
        try yml.replacingOccurrences(of: "  test:\n", with: "  test:\n    url: https://test.demo.example/\n")
            .write(toFile: world.project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        let dotenv = try #require(world.read("kiln/rotation-test.env"))
        #expect(dotenv.contains("KILN_ENVIRONMENT_URL=https://test.demo.example/\n"))
        #expect(GitLabDotenv.violations(dotenv) == [])
        let made = try #require(try world.client.describeLaunchTemplateVersions(.id(template), versions: ["3"]).first)
        #expect(made.instanceTags["kiln:app"] == "demo")
        #expect(made.instanceTags["kiln:application"] == nil)
        #expect(made.instanceTags["kiln:version"] == "v2.0.0")
        #expect(made.instanceTags["kiln:release"]?.isEmpty == false)
    }
}

/// `environments.<env>.url`: an absolute http(s) URL or a Terraform output
/// holding one; anything else is 78 naming the key (issue 14).
@Suite struct EnvironmentURLTests {
    func load(_ url: String, terraform: [String: String] = [:]) throws -> String? {
        let file = try ConfigFile.parse(
            "environments:\n  test:\n    url: \(url)\n    rotate:\n      auto_scaling_group: g\n", path: "kiln.yml")
        return try RotateConfiguration.load(file, environment: "test", terraform: terraform).environmentURL
    }

    @Test func aLiteralOrATerraformOutput() throws {
        #expect(try load("https://demo.example/") == "https://demo.example/")
        #expect(
            try load("{terraform: test_url}", terraform: ["test_url": "http://lb-1.example"]) == "http://lb-1.example")
    }

    @Test(arguments: ["ftp://x.example", "not a url", "/relative", "{terraform: missing}", "http://"])
    func anythingElseIsABadConfigurationNamingTheKey(url: String) {
        do {
            _ = try load(url)
            Issue.record("\(url) was accepted")
        } catch let error as KilnError {
            #expect(error.exitStatus == .badConfiguration)
            #expect(error.message.contains("environments.test.url"), "\(error.message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
