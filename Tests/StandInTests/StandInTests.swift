import Foundation
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// The stand-ins as later Swift tests use them: started from Swift, reached
/// with Kiln's own HTTP client, stopped at the end. (Their finer behaviour
/// is tested in scripts/standins/tests with pytest.)
@Suite struct StandInTests {
    let client = HTTPClient(settings: HTTPSettings())

    func json(_ response: HTTPResponse) throws -> Any {
        try JSONSerialization.jsonObject(with: response.body)
    }

    @Test func worldBuildsAndFleetAnswers503ThenHealthyOnTheInstancesOwnAddress() throws {
        try withStandIn("moto") { moto in
            try withStandIn("fleet", ["--endpoint", moto.url, "--poll", "0.2"]) { fleet in
                let healthPort = try #require(fleet["health_port"] as? Int)
                let world = try StandIn.runOnce(
                    "world",
                    [
                        "--endpoint", moto.url, "--desired", "2", "--boot-delay", "5", "--health-port",
                        String(healthPort),
                    ])
                let asg = try #require((world["test_asg_name"] as? [String: Any])?["value"] as? String)
                #expect(!asg.isEmpty)
                #expect((world["live_asg_name"] as? [String: Any])?["value"] is String)

                // Wait for the fleet to serve the instances (4: two groups of two).
                var instances: [[String: Any]] = []
                let deadline = Date().addingTimeInterval(30)
                while instances.count < 4 && Date() < deadline {
                    instances =
                        try json(client.send(HTTPRequest(url: "\(fleet.url)/instances"))) as? [[String: Any]] ?? []
                    if instances.count < 4 { usleep(100_000) }
                }
                #expect(instances.count == 4)
                let address = try #require(instances.first?["private_ip"] as? String)
                #expect(address.hasPrefix("127.0."))

                let probe = HTTPRequest(url: "http://\(address):\(healthPort)/health", timeout: 5)
                let first = try client.send(probe)
                #expect(first.status == 503, "still booting")
                var status = first.status
                let healthyBy = Date().addingTimeInterval(20)
                while status != 200 && Date() < healthyBy {
                    usleep(200_000)
                    status = try client.send(probe).status
                }
                #expect(status == 200)
            }
        }
    }

    @Test func faultProxyThrottlesInEC2sShapeBeforeForwarding() throws {
        try withStandIn("moto") { moto in
            try withStandIn("faults", ["--upstream", moto.url, "--throttle", "1.0"]) { proxy in
                // Fault injection happens before forwarding, so the request
                // needs only the credential scope that names its service.
                let request = HTTPRequest(
                    method: "POST", url: proxy.url + "/",
                    headers: [
                        ("Content-Type", "application/x-www-form-urlencoded"),
                        (
                            "Authorization",
                            """
                            AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-east-1/ec2/aws4_request, \
                            SignedHeaders=host, Signature=00
                            """
                        ),
                    ],
                    body: Data("Action=CreateTags&Version=2016-11-15&ResourceId.1=ami-1&Tag.1.Key=k&Tag.1.Value=v".utf8)
                )
                let response = try client.send(request)
                #expect(response.status == 503)
                #expect(response.text.contains("<Code>RequestLimitExceeded</Code>"))
                #expect(response.text.hasPrefix("<?xml"))

                let stats = try #require(
                    try json(client.send(HTTPRequest(url: proxy.url + "/__kiln_faults/stats"))) as? [String: Any])
                let throttled = (stats["faults"] as? [String: Any])?["throttle"] as? [String: Any]
                #expect((throttled?["ec2"] as? [String: Any])?["CreateTags"] as? Int == 1)
                let forwarded = stats["forwarded"] as? [String: Any] ?? [:]
                #expect(((forwarded["ec2"] as? [String: Any])?["CreateTags"] as? Int ?? 0) == 0)
            }
        }
    }
}
