import Foundation
import KilnAWS
import KilnCore
import KilnTestSupport
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
        #expect(calls["autoscaling:SetDesiredCapacity"] == 3)
        #expect(calls["autoscaling:TerminateInstanceInAutoScalingGroup"] == 6)
        #expect(output.contains("batch 3 of 3"))
    }
}
