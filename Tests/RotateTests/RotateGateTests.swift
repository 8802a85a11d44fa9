import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

@testable import Rotate

extension RotateWorld {
    /// PutMetricAlarm in the world's moto (CloudWatch API Reference): an
    /// alarm on the load balancer's 5xx count, to be set by hand.
    func putAlarm(_ name: String) throws {
        var parameters = QueryParameters()
        parameters.add("AlarmName", name)
        parameters.add("Namespace", "AWS/ApplicationELB")
        parameters.add("MetricName", "HTTPCode_Target_5XX_Count")
        parameters.add("Statistic", "Sum")
        parameters.add("Period", 60)
        parameters.add("EvaluationPeriods", 1)
        parameters.add("Threshold", "10")
        parameters.add("ComparisonOperator", "GreaterThanThreshold")
        _ = try client.query(.cloudwatch, "PutMetricAlarm", parameters, mutation: .idempotent)
    }

    func setAlarm(_ name: String, _ state: AlarmState, reason: String) throws {
        var parameters = QueryParameters()
        parameters.add("AlarmName", name)
        parameters.add("StateValue", state.rawValue)
        parameters.add("StateReason", reason)
        _ = try client.query(.cloudwatch, "SetAlarmState", parameters, mutation: .idempotent)
    }

    /// kiln-rotate on another thread; `wait()` gives its exit code and output.
    func rotateInBackground() -> () -> (code: Int32?, output: String) {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (code: Int32?, output: String) = (nil, "not run")
        Thread.detachNewThread {
            result = (try? self.rotate()) ?? (nil, "kiln-rotate could not be started")
            done.signal()
        }
        return {
            done.wait()
            return result
        }
    }
}

@Suite struct RotateAlarmTests {
    @Test func anAlarmGoingToAlarmMidBatchRollsTheDeploymentBack() throws {
        let world = try RotateWorld(desired: 2)
        try world.putAlarm("web-5xx")
        try world.putAlarm("web-latency")
        try world.setAlarm("web-5xx", .ok, reason: "fine")
        // Slow to boot, so the batch is still waiting when the alarm fires.
        let ami = try world.makeAMI(health: "healthy", bootDelay: 4)
        try world.prepare(ami: ami, rotate: "        alarms: [web-latency, web-5xx]")
        let wait = world.rotateInBackground()
        #expect(try eventually { try world.groupState().desiredCapacity > 2 }, "the first batch launched")
        try world.setAlarm("web-5xx", .alarm, reason: "Threshold Crossed: 12 > 10")
        let (code, output) = wait()
        #expect(code == 3, "\(output)")
        #expect(output.contains("CloudWatch alarm web-5xx: ALARM"), "\(output)")
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
        let json = world.rotation
        #expect(json["outcome"] as? String == "rolled-back")
        #expect((json["failure"] as? String ?? "").contains("web-5xx"))
        #expect((json["calls"] as? [String: Int])?["cloudwatch:DescribeAlarms"] ?? 0 >= 2)
        let svg = try #require(world.read("kiln/rotation-test.svg"))
        let picture = try XMLReader.parse(svg)
        let failures = picture.all("g").filter { $0.attributes["class"] == "event failure" }
        #expect(failures.count == 1)
        #expect(failures.first?.string("title")?.contains("web-5xx") == true)
        #expect(picture.all("g").contains { $0.attributes["class"] == "event rollback" })
    }

    @Test func anAlarmThatDoesNotExistIsBadConfigurationBeforeAnythingChanges() throws {
        let world = try RotateWorld(desired: 2)
        try world.putAlarm("web-5xx")
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami, rotate: "        alarms: [web-5xx, web-5xxx]")
        let versions = try world.launchTemplateVersions()
        let (code, output) = try world.rotate()
        #expect(code == 78, "\(output)")
        #expect(output.contains("environments.test.rotate.health.alarms: no CloudWatch alarm named 'web-5xxx'"))
        world.expectRefusedReport("no CloudWatch alarm named 'web-5xxx'")
        #expect(try world.launchTemplateVersions() == versions, "no launch template version made")
        let state = try world.groupState()
        #expect(!state.tags.keys.contains { $0.hasPrefix("kiln:rotation:") }, "no journal")
        #expect(state.suspendedProcesses.isEmpty)
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
    }

    @Test func theAlarmRuleFailsOnAlarmOnlyAndOnAnAlarmThatVanished() {
        let alarms = [
            CloudWatchAlarm(name: "a", state: .ok, reason: nil, kind: .metric),
            CloudWatchAlarm(name: "b", state: .insufficientData, reason: nil, kind: .composite),
            CloudWatchAlarm(name: "c", state: .alarm, reason: "Threshold Crossed", kind: .metric),
        ]
        #expect(AlarmWatch.failure(["a", "b"], among: alarms) == nil)
        #expect(AlarmWatch.failure(["a", "c"], among: alarms)?.check == "CloudWatch alarm c")
        #expect(AlarmWatch.failure(["a", "c"], among: alarms)?.answer == "ALARM: 'Threshold Crossed'")
        #expect(AlarmWatch.failure(["gone", "a"], among: alarms)?.answer.contains("no longer exists") == true)
        #expect(AlarmWatch.missing(["a", "x", "b", "y"], among: alarms) == ["x", "y"])
    }
}

private func rotateSection(_ text: String) throws -> RotateConfiguration {
    let file = try ConfigFile.parse(
        "environments:\n  test:\n    rotate:\n      auto_scaling_group: g\n" + text, path: "kiln.yml")
    return try RotateConfiguration.load(file, environment: "test", terraform: [:])
}

@Suite struct CheckpointTests {
    @Test func aCheckpointStopsAfterTheFirstBatchThatReachesIt() {
        let checkpoints = Checkpoints(percentages: [25, 50])
        #expect(
            checkpoints.stops(batches: [2, 2, 2]) == [
                Checkpoints.Stop(afterBatch: 1, percentages: [25], replaced: 2, total: 6),
                Checkpoints.Stop(afterBatch: 2, percentages: [50], replaced: 4, total: 6),
            ])
        // Blue-green: one batch reaches both; one stop, after it.
        #expect(
            checkpoints.stops(batches: [6]) == [
                Checkpoints.Stop(afterBatch: 1, percentages: [25, 50], replaced: 6, total: 6)
            ])
        // A canary's batch of one, then rolling: 1 of 5 is 20%.
        #expect(
            Checkpoints(percentages: [20, 21, 100]).stops(batches: [1, 2, 2]).map(\.afterBatch) == [1, 2, 3])
        // In integers: 3 of 9 is 33.3...%, which reaches 33% and not 34%.
        #expect(Checkpoints(percentages: [33, 34]).stops(batches: [3, 3, 3]).map(\.afterBatch) == [1, 2])
        #expect(Checkpoints(percentages: [50]).stops(batches: []) == [])
        #expect(Checkpoints(percentages: [50]).stops(batches: [1]).first?.label == "50%")
    }

    @Test func thePlanPrintsTheStopsTheRotationFollows() {
        // One schedule for the plan and the run (RolloutSchedule); the checkpoints are placed on it.
        let batches = RolloutSchedule(strategy: .rolling, batch: .count(2), desired: 6, toReplace: 6).batches
        #expect(batches == [2, 2, 2])
        #expect(RolloutSchedule(strategy: .canary, batch: .count(2), desired: 5, toReplace: 5).batches == [1, 2, 2])
    }

    @Test func checkpointSettingsAreReadAndBadOnesNamed() throws {
        let read = try rotateSection("      checkpoints: [25%, 50]\n      checkpoint_soak: 90s\n")
        #expect(read.checkpoints == Checkpoints(percentages: [25, 50], soak: 90))
        #expect(try rotateSection("      checkpoints: 50%\n").checkpoints == Checkpoints(percentages: [50], soak: 60))
        #expect(try rotateSection("").checkpoints == nil)
        let cases: [(String, String)] = [
            ("      checkpoints: [50%, 25%]\n", "checkpoints[1]: 25% after 50%"),
            ("      checkpoints: [50%, 50%]\n", "ascending order, each once"),
            ("      checkpoints: [0%]\n", "from 1% to 100%, got '0%'"),
            ("      checkpoints: [101%]\n", "from 1% to 100%"),
            ("      checkpoints: [half]\n", "got 'half'"),
            ("      checkpoints: []\n", "an empty list"),
            ("      checkpoint_soak: 60s\n", "checkpoint_soak: needs checkpoints"),
            ("      checkpoints: [50%]\n      checkpoint_soak: 49h\n", "at most 48h"),
        ]
        for (text, message) in cases {
            #expect(throws: KilnError.self) { try rotateSection(text) }
            do {
                _ = try rotateSection(text)
            } catch let error as KilnError {
                #expect(error.exitStatus == .badConfiguration)
                #expect(error.message.contains(message), "\(text): \(error.message)")
            }
        }
    }

    @Test func alarmSettingsAreReadAndBadOnesNamed() throws {
        let read = try rotateSection("      health:\n        alarms: [a, b]\n")
        #expect(read.health.alarms == ["a", "b"])
        #expect(try rotateSection("      health:\n        alarms: one\n").health.alarms == ["one"])
        for (text, message) in [
            ("      health:\n        alarms: [a, a]\n", "health.alarms[1]: 'a' is named twice"),
            ("      health:\n        alarms: ['']\n", "1 to 255 characters"),
            ("      health:\n        alarms: [[a]]\n", "health.alarms[0]: expected a string"),
        ] {
            do {
                _ = try rotateSection(text)
                Issue.record("\(text) was accepted")
            } catch let error as KilnError {
                #expect(error.exitStatus == .badConfiguration)
                #expect(error.message.contains(message), "\(text): \(error.message)")
            }
        }
    }

    @Test func aRotationSoaksAtEachCheckpointWithTheGateWatching() throws {
        let world = try RotateWorld(desired: 4)
        let ami = try world.makeAMI(health: "healthy", bootDelay: 0.2)
        try world.prepare(ami: ami, rotate: "      checkpoints: [50%]\n      checkpoint_soak: 2s")
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        #expect(output.contains("checkpoint 50% (2 of 4 replaced): soaking for 2.0s"), "\(output)")
        #expect(output.contains("checkpoint 50% held through its soak"))
        try world.expectSettled(desired: 4, ami: ami, version: "2")
        // The soak sits between batch 1's confirmation and batch 2's start.
        let svg = try XMLReader.parse(try #require(world.read("kiln/rotation-test.svg")))
        func at(_ kind: String) -> [Double] {
            svg.all("g").filter { $0.attributes["class"] == "event \(kind)" }.compactMap {
                $0.string("title").flatMap { title in
                    title.split(separator: " at ").last?.split(separator: "s:").first.flatMap { Double($0) }
                }
            }
        }
        let confirmed = at("batch-confirmed")
        let started = at("batch-started")
        let checkpoint = at("checkpoint")
        #expect(confirmed.count == 2 && started.count == 2 && checkpoint.count == 1, "\(confirmed) \(started)")
        if started.count == 2, let mark = checkpoint.first {
            #expect(started[1] - mark >= 2, "batch 2 started \(started[1] - mark)s after the checkpoint")
        }
    }

    @Test func anInstanceThatTurnsUnhealthyDuringACheckpointSoakRollsBack() throws {
        let world = try RotateWorld(desired: 2)
        let ami = try world.makeAMI(health: "flap", bootDelay: 0, flapPeriod: 1.5)
        try world.prepare(ami: ami, rotate: "      checkpoints: [100%]\n      checkpoint_soak: 20s")
        let (code, output) = try world.rotate()
        #expect(code == 3, "\(output)")
        #expect(output.contains("checkpoint 100% (2 of 2 replaced): soaking for 20.0s"), "\(output)")
        #expect(output.contains("turned unhealthy after passing"), "\(output)")
        #expect(!output.contains("held through its soak"))
        try world.expectSettled(desired: 2, ami: world.appAMI, version: "1")
    }

    /// The fleet's control endpoint: per instance, the probes it answered and the numbers of those that failed.
    static func probes(_ world: RotateWorld) throws -> [String: (probes: Int, failed: [Int])] {
        let answer = try HTTPClient(settings: HTTPSettings()).send(HTTPRequest(url: world.fleet.url + "/instances"))
        let listing = try JSONSerialization.jsonObject(with: Data(answer.text.utf8)) as? [[String: Any]] ?? []
        return Dictionary(
            uniqueKeysWithValues: listing.compactMap { entry in
                (entry["instance_id"] as? String).map {
                    ($0, (entry["probes"] as? Int ?? 0, entry["failed_probes"] as? [Int] ?? []))
                }
            })
    }

    @Test func oneDroppedProbeAfterPassingDoesNotRollTheReleaseBack() throws {
        // Batches of 2 in a group of 4: the first batch's instances pass at
        // their second probe and answer 503 to their third while the second
        // batch boots. The default unhealthy_threshold (2) lets that pass.
        let world = try RotateWorld(desired: 4)
        let ami = try world.makeAMI(health: "healthy", failProbes: "3")
        try world.prepare(ami: ami)
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        try world.expectSettled(desired: 4, ami: ami, version: "2")
        let new = Set(try world.groupState().instances.map(\.id))
        let probes = try Self.probes(world).filter { new.contains($0.key) }
        let dropped = probes.filter { $0.value.failed == [3] && $0.value.probes > 3 }
        #expect(dropped.count >= 2, "the first batch answered 503 once, after passing, and was probed again: \(probes)")
        #expect(world.rotation["outcome"] as? String == "deployed")
    }
}
