import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// Issue 16: Auto Scaling's answers for a group busy with another activity
/// (Amazon EC2 Auto Scaling API Reference, "Errors" of UpdateAutoScalingGroup,
/// SetDesiredCapacity, TerminateInstanceInAutoScalingGroup:
/// ScalingActivityInProgress, HTTP 400; ResourceContention, HTTP 500) are
/// refusals that did nothing: asked again under the retry policy, also for a
/// call sent only once, and exit 75 when the attempts run out, so the
/// template's `retry: exit_codes: [75]` fires. Before, the 400 was exit 69.
@Suite struct BusyGroupTests {
    /// The world's test group, behind the fault proxy answering `code` for
    /// the first `times` calls of `action` (every call when nil).
    private func withBusyGroup(
        _ code: String, status: Int, action: String, times: Int?,
        _ body: (_ proxy: StandIn, _ moto: StandIn, _ group: String) throws -> Void
    ) throws {
        try withStandIn("moto") { moto in
            let world = try StandIn.runOnce("world", ["--endpoint", moto.url, "--environments", "test"])
            let group = try #require((world["test_asg_name"] as? [String: Any])?["value"] as? String)
            try withStandIn("faults", ["--upstream", moto.url]) { proxy in
                var error: [String: Any] = ["code": code, "status": status]
                if let times { error["times"] = times }
                let settings = try JSONSerialization.data(withJSONObject: ["error": error, "only_actions": [action]])
                _ = try fetchJSON(
                    proxy.url + "/__kiln_faults/config", method: "POST", body: String(decoding: settings, as: UTF8.self)
                )
                try body(proxy, moto, group)
            }
        }
    }

    @Test func scalingActivityInProgressIsAskedAgainUntilTheGroupIsFree() throws {
        try withBusyGroup("ScalingActivityInProgress", status: 400, action: "SetDesiredCapacity", times: 2) {
            proxy, moto, group in
            let client = makeClient(endpoint: proxy.url)
            let before = try #require(try client.describeAutoScalingGroups(names: [group]).first)
            try client.setDesiredCapacity(group, before.desiredCapacity + 1)
            let after = try #require(try makeClient(endpoint: moto.url).describeAutoScalingGroups(names: [group]).first)
            #expect(after.desiredCapacity == before.desiredCapacity + 1)
            let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
            #expect(proxyCount(stats, "calls", "autoscaling", "SetDesiredCapacity") == 3)
            #expect(proxyCount(stats, "forwarded", "autoscaling", "SetDesiredCapacity") == 1)
        }
    }

    /// A termination is sent only once when its effect is unknown; a
    /// ResourceContention proves it had none, so it is sent again.
    @Test func resourceContentionOnACallSentOnceIsAskedAgain() throws {
        try withBusyGroup(
            "ResourceContention", status: 500, action: "TerminateInstanceInAutoScalingGroup", times: 2
        ) { proxy, moto, group in
            let client = makeClient(endpoint: proxy.url)
            let instance = try #require(try client.describeAutoScalingGroups(names: [group]).first?.instances.first)
            _ = try client.terminateInstanceInAutoScalingGroup(instance.id, shouldDecrementDesiredCapacity: false)
            let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
            #expect(proxyCount(stats, "calls", "autoscaling", "TerminateInstanceInAutoScalingGroup") == 3)
            #expect(proxyCount(stats, "forwarded", "autoscaling", "TerminateInstanceInAutoScalingGroup") == 1)
        }
    }

    @Test func aGroupBusyOnEveryAttemptIsATemporaryFailure() throws {
        for (code, status) in [("ScalingActivityInProgress", 400), ("ResourceContention", 500)] {
            try withBusyGroup(code, status: status, action: "UpdateAutoScalingGroup", times: nil) {
                proxy, moto, group in
                let client = makeClient(
                    endpoint: proxy.url, retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.002))
                do {
                    try client.updateAutoScalingGroup(group, maxSize: 9)
                    Issue.record("expected \(code) to fail the call")
                } catch let error as AWSError {
                    #expect(error.code == code)
                    #expect(KilnExit.for(error) == 75, "\(error)")
                }
                let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
                #expect(proxyCount(stats, "calls", "autoscaling", "UpdateAutoScalingGroup") == 3, "one per attempt")
                #expect(proxyCount(stats, "forwarded", "autoscaling", "UpdateAutoScalingGroup") == 0)
            }
        }
    }
}
