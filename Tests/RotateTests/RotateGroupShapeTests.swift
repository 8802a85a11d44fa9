import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

@testable import Rotate

extension RotateWorld {
    /// Nothing a refused rotation may change: the launch template's
    /// versions, the group's template and instances, no journal, nothing suspended.
    func expectUntouched(versions: [Int], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try launchTemplateVersions() == versions, "a version was made", sourceLocation: sourceLocation)
        let state = try groupState()
        #expect(
            !state.tags.keys.contains { $0.hasPrefix("kiln:rotation:") }, "journal left: \(state.tags)",
            sourceLocation: sourceLocation)
        #expect(state.suspendedProcesses.isEmpty, sourceLocation: sourceLocation)
        #expect(state.launchTemplate?.version == "1", sourceLocation: sourceLocation)
    }

    /// The report of a run refused before the rotation began: rotation-test.json
    /// says `refused` with the reason, names the group when the settings
    /// were read, claims nothing done, and the picture is beside it.
    func expectRefusedReport(
        _ reason: String, group named: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let json = rotation
        #expect(json["outcome"] as? String == "refused", "\(json)", sourceLocation: sourceLocation)
        #expect(
            (json["failure"] as? String ?? "").contains(reason), "\(json["failure"] ?? "no failure")",
            sourceLocation: sourceLocation)
        #expect(
            json["autoScalingGroup"] as? String == (named ? group : nil), "\(json)", sourceLocation: sourceLocation)
        #expect(
            (json["launched"] as? [Any])?.isEmpty == true && (json["terminated"] as? [Any])?.isEmpty == true
                && json["batches"] as? Int == 0, "\(json)", sourceLocation: sourceLocation)
        let svg = read("kiln/rotation-test.svg") ?? ""
        #expect(svg.contains("kiln-rotate test: refused"), "\(svg.prefix(300))", sourceLocation: sourceLocation)
    }
}

extension RotateWorld {
    /// A group of two with a mixed instances policy on the test launch
    /// template at version 1, as Terraform's mixed_instances_policy makes it:
    /// the given overrides (each `Name: value` under
    /// `Overrides.member.N`) and an On-Demand base. Returns its name.
    func makeMixedGroup(overrides: [[String: String]]) throws -> String {
        let subnets = (outputs["subnet_ids"] as? [String: Any])?["value"] as? [String] ?? []
        let group = "demo-mixed"
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", group)
        parameters.add("MinSize", 2)
        parameters.add("MaxSize", 4)
        parameters.add("DesiredCapacity", 2)
        parameters.add("VPCZoneIdentifier", subnets.joined(separator: ","))
        let policy = "MixedInstancesPolicy.LaunchTemplate"
        parameters.add("\(policy).LaunchTemplateSpecification.LaunchTemplateId", output("test_launch_template_id"))
        parameters.add("\(policy).LaunchTemplateSpecification.Version", "1")
        for (index, override) in overrides.enumerated() {
            for (name, value) in override { parameters.add("\(policy).Overrides.member.\(index + 1).\(name)", value) }
        }
        parameters.add("MixedInstancesPolicy.InstancesDistribution.OnDemandBaseCapacity", 1)
        _ = try client.query(.autoscaling, "CreateAutoScalingGroup", parameters, mutation: .idempotent)
        return group
    }

    /// kiln.yml for the test environment on `group`, with a quick gate.
    func configure(group: String) throws {
        try """
        environments:
          test:
            rotate:
              auto_scaling_group: \(group)
              health:
                url: http://{private_ip}:\(healthPort)/health
                poll: 0.2s
                consecutive: 2
                timeout: 20s

        """.write(toFile: project.file("kiln.yml"), atomically: true, encoding: .utf8)
    }
}

@Suite struct RotateGroupShapeTests {
    @Test func aStandbyInstanceIsRefusedWithWhatToDoBeforeAnythingChanges() throws {
        let world = try RotateWorld(desired: 3)
        let standby = try #require(world.groupState().instances.first?.id)
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", world.group)
        parameters.addList("InstanceIds.member", [standby])
        parameters.add("ShouldDecrementDesiredCapacity", true)
        _ = try world.client.query(.autoscaling, "EnterStandby", parameters, mutation: .idempotent)
        #expect(try world.groupState().instances.first { $0.id == standby }?.lifecycleState == .standby)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let versions = try world.launchTemplateVersions()
        let (code, output) = try world.rotate()
        #expect(code == 78, "\(output)")
        #expect(output.contains("are in Standby (\(standby))"), "\(output)")
        #expect(output.contains("aws autoscaling exit-standby --auto-scaling-group-name \(world.group)"))
        try world.expectUntouched(versions: versions)
        world.expectRefusedReport("are in Standby (\(standby))")
        #expect(world.rotation["fromVersion"] as? Int == 1, "the version the group is on")
        #expect(try world.groupState().instances.first { $0.id == standby }?.lifecycleState == .standby)
    }

    @Test func scaleInProtectedOldInstancesAreDetachedAndReplaced() throws {
        let world = try RotateWorld(desired: 4)
        let old = try world.groupState().instances.map(\.id).sorted()
        try world.client.setInstanceProtection(world.group, old, protected: true)
        #expect(try world.groupState().instances.allSatisfy(\.protectedFromScaleIn))
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        // Without a termination hook they are detached: protection is no bar to that.
        #expect(output.contains("detached \(old[0..<2].joined(separator: ", "))"), "\(output)")
        try world.expectSettled(desired: 4, ami: ami, version: "2")
        let calls = world.rotation["calls"] as? [String: Int] ?? [:]
        #expect(calls["autoscaling:SetInstanceProtection"] == nil, "\(calls)")
    }

    @Test func aMixedInstancesGroupGetsTheNewVersionInsideItsPolicy() throws {
        let world = try RotateWorld(desired: 1)
        let group = try world.makeMixedGroup(overrides: [["InstanceType": "t3.micro"], ["InstanceType": "t3a.micro"]])
        func state() throws -> AutoScalingGroup {
            try #require(world.client.describeAutoScalingGroups(names: [group]).first)
        }
        #expect(try state().usesMixedInstancesPolicy)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try world.configure(group: group)
        let (code, output) = try world.rotate()
        #expect(code == 0, "\(output)")
        let after = try state()
        #expect(after.usesMixedInstancesPolicy, "the policy is kept")
        #expect(after.launchTemplate?.version == "2")
        #expect(after.minSize == 2 && after.maxSize == 4 && after.desiredCapacity == 2)
        var describe = QueryParameters()
        describe.addList("AutoScalingGroupNames.member", [group])
        let kept = try #require(
            try world.client.query(.autoscaling, "DescribeAutoScalingGroups", describe).first(
                named: "MixedInstancesPolicy"))
        #expect(kept.path("LaunchTemplate", "LaunchTemplateSpecification")?.string("Version") == "2")
        #expect(
            kept["LaunchTemplate"]?["Overrides"]?.all("member").compactMap { $0.string("InstanceType") } == [
                "t3.micro", "t3a.micro",
            ])
        #expect(kept.path("InstancesDistribution", "OnDemandBaseCapacity")?.text == "1")
        let images = try world.client.describeInstances(instanceIDs: after.instances.map(\.id)).map(\.imageID)
        #expect(images == [ami, ami])
    }

    @Test func aMixedInstancesOverrideWithItsOwnTemplateIsRefusedBeforeAnythingChanges() throws {
        let world = try RotateWorld(desired: 1)
        // Another template of the world stands for the override's own (an
        // arm64 image's, say); the live one is at version 1 too.
        let own = world.output("live_launch_template_id")
        let group = try world.makeMixedGroup(overrides: [
            ["InstanceType": "t3.micro"],
            [
                "InstanceType": "t4g.micro", "LaunchTemplateSpecification.LaunchTemplateId": own,
                "LaunchTemplateSpecification.Version": "1",
            ],
        ])
        let before = try #require(world.client.describeAutoScalingGroups(names: [group]).first)
        #expect(before.launchTemplateOverrides.map(\.launchTemplate?.id) == [nil, own])
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        try world.configure(group: group)
        let versions = try world.launchTemplateVersions()
        let (code, output) = try world.rotate()
        #expect(code == 78, "\(output)")
        let reason = "\(group)'s mixed instances policy launches instance type t4g.micro from its own launch template"
        #expect(output.contains("\(reason) (\(own) version 1)"), "\(output)")
        #expect(output.contains("Remove that override's LaunchTemplateSpecification"), "\(output)")
        #expect(try world.launchTemplateVersions() == versions, "a version was made")
        let after = try #require(world.client.describeAutoScalingGroups(names: [group]).first)
        #expect(after.launchTemplate?.version == "1" && after.instances.map(\.id) == before.instances.map(\.id))
        #expect(!after.tags.keys.contains { $0.hasPrefix("kiln:rotation:") } && after.suspendedProcesses.isEmpty)
        let report = world.rotation
        #expect(report["outcome"] as? String == "refused" && report["autoScalingGroup"] as? String == group)
        #expect((report["failure"] as? String ?? "").contains(reason), "\(report)")
        let (planCode, plan) = try world.rotate(["plan"])
        #expect(planCode == 78 && plan.contains("refused:") && plan.contains(reason), "\(plan)")
    }

    @Test func aGroupWithAWarmPoolIsRefusedBeforeAnythingChanges() throws {
        let world = try RotateWorld(desired: 2)
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", world.group)
        parameters.add("MinSize", 1)
        parameters.add("PoolState", "Stopped")
        _ = try world.client.query(.autoscaling, "PutWarmPool", parameters, mutation: .idempotent)
        #expect(try world.client.describeWarmPool(world.group)?.poolState == "Stopped")
        // The group's own DescribeAutoScalingGroups answer carries it, which is what Kiln reads.
        #expect(try world.groupState().warmPool?.poolState == "Stopped")
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        let versions = try world.launchTemplateVersions()
        let (code, output) = try world.rotate()
        #expect(code == 78, "\(output)")
        #expect(output.contains("has a warm pool (Stopped, min size 1)"), "\(output)")
        try world.expectUntouched(versions: versions)
        world.expectRefusedReport("has a warm pool")
        let (planCode, plan) = try world.rotate(["plan"])
        #expect(planCode == 78 && plan.contains("refused:") && plan.contains("warm pool"), "\(plan)")
    }

    @Test func aGroupWithoutAWarmPoolHasNone() throws {
        let world = try RotateWorld(desired: 1)
        #expect(try world.client.describeWarmPool(world.group) == nil)
    }
}
