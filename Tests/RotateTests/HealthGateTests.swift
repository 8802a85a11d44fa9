import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import Testing

@testable import Rotate

/// The gate alone, on a simulated clock and no AWS: an instance's checks
/// are what one poll saw of it (its target group's state), judged in turn.
@Suite struct HealthGateTests {
    static let targetGroup = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/demo-test/abc"

    /// A gate with `consecutive: 2`, no grace and no HTTP probe, watching one target group.
    static func gate(unhealthyThreshold: Int) -> HealthGate {
        var settings = HealthSettings()
        settings.consecutive = 2
        settings.unhealthyThreshold = unhealthyThreshold
        return HealthGate(settings: settings, targetGroups: [targetGroup], http: HTTPClient(settings: HTTPSettings()))
    }

    static func instance(
        _ target: TargetHealthState, lifecycle: LifecycleState = .inService, health: HealthStatus = .healthy
    ) -> ObservedInstance {
        ObservedInstance(
            id: "i-new", lifecycleState: lifecycle, healthStatus: health, release: "r2", imageID: "ami-2",
            privateIP: "127.0.1.9", publicIP: nil, privateDNS: nil, targetHealth: [targetGroup: target])
    }

    /// Judges one check a second from t = 0; the failure of each check (nil: none).
    static func judge(_ gate: HealthGate, _ checks: [ObservedInstance]) -> [RotationFailure?] {
        checks.enumerated().map { second, check in
            gate.judge([check], now: Date(timeIntervalSince1970: Double(second)))
        }
    }

    @Test func oneFailedCheckAfterPassingIsToleratedAtTheDefaultThreshold() {
        #expect(HealthSettings().unhealthyThreshold == 2, "as a target group's UnhealthyThresholdCount")
        let gate = Self.gate(unhealthyThreshold: 2)
        let healthy = Self.instance(.healthy)
        let failed = Self.instance(.unhealthy)
        let verdicts = Self.judge(gate, [healthy, healthy, failed])
        #expect(verdicts.allSatisfy { $0 == nil }, "\(verdicts)")
        #expect(gate.passed("i-new") && gate.serving("i-new"), "still passed after one failed check")
        #expect(gate.lastProblem("i-new")?.contains("unhealthy") == true)
        // A pass between two single failures starts the count again.
        #expect(Self.judge(gate, [healthy, failed, healthy]).allSatisfy { $0 == nil })
        #expect(gate.passed("i-new"))
    }

    @Test func twoFailedChecksInARowFailAPassedInstance() throws {
        let gate = Self.gate(unhealthyThreshold: 2)
        let healthy = Self.instance(.healthy)
        let failed = Self.instance(.unhealthy)
        let verdicts = Self.judge(gate, [healthy, healthy, failed, failed])
        #expect(verdicts.prefix(3).allSatisfy { $0 == nil }, "\(verdicts)")
        let failure = try #require(verdicts[3])
        #expect(failure.instance == "i-new" && failure.check == "target group demo-test")
        #expect(failure.answer == "turned unhealthy after passing (2 failed checks in a row): unhealthy")
    }

    @Test func aThresholdOfOneFailsAtTheFirstFailedCheck() throws {
        let gate = Self.gate(unhealthyThreshold: 1)
        let healthy = Self.instance(.healthy)
        let verdicts = Self.judge(gate, [healthy, healthy, Self.instance(.unhealthy)])
        #expect(verdicts.prefix(2).allSatisfy { $0 == nil })
        #expect(try #require(verdicts[2]).answer == "turned unhealthy after passing: unhealthy")
    }

    @Test func beforePassingAFailedCheckOnlyStartsTheCountAgain() {
        let gate = Self.gate(unhealthyThreshold: 1)
        let healthy = Self.instance(.healthy)
        let failed = Self.instance(.unhealthy)
        #expect(Self.judge(gate, [healthy, failed, failed, healthy]).allSatisfy { $0 == nil })
        #expect(!gate.passed("i-new"), "one pass since the last failure, two needed")
    }

    @Test(arguments: [
        instance(.healthy, health: .unhealthy), instance(.healthy, lifecycle: .terminating),
        instance(.healthy, lifecycle: .terminatingWait),
    ])
    func autoScalingsOwnVerdictFailsAtOnceWhateverTheThreshold(_ replaced: ObservedInstance) throws {
        let gate = Self.gate(unhealthyThreshold: 5)
        let healthy = Self.instance(.healthy)
        let verdicts = Self.judge(gate, [healthy, healthy, replaced])
        #expect(try #require(verdicts[2]).check == "auto scaling", "\(verdicts)")
    }

    @Test func theThresholdIsReadFromKilnYmlAndNonsenseNamed() throws {
        func load(_ health: String) throws -> RotateConfiguration {
            let file = try ConfigFile.parse(
                "environments:\n  test:\n    rotate:\n      auto_scaling_group: g\n      health:\n        \(health)\n",
                path: "kiln.yml")
            return try RotateConfiguration.load(file, environment: "test", terraform: [:])
        }
        #expect(try load("unhealthy_threshold: 1").health.unhealthyThreshold == 1)
        #expect(try load("unhealthy_threshold: 5").health.unhealthyThreshold == 5)
        #expect(try load("consecutive: 4").health.unhealthyThreshold == 2, "the default")
        for (text, message) in [
            (
                "unhealthy_threshold: 0",
                "kiln.yml:6: environments.test.rotate.health.unhealthy_threshold: must be at least 1"
            ),
            ("unhealthy_threshold: two", "environments.test.rotate.health.unhealthy_threshold"),
        ] {
            do {
                _ = try load(text)
                Issue.record("\(text) was accepted")
            } catch let error as KilnError {
                #expect(error.exitStatus == .badConfiguration)
                #expect(error.message.contains(message), "\(text): \(error.message)")
            }
        }
    }
}
