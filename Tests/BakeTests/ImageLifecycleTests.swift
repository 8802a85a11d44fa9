import Bake
import Foundation
import KilnAWS
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, lifecycle: `bake.deprecate_after_days` (off by default) has EC2
/// deprecate the image, in every region it is in, that many days after the
/// bake. Kiln makes the call itself (EnableImageDeprecation), whatever the
/// Packer version: Packer 1.6.6 has no `deprecate_at`. moto 5.2.5 has no
/// EnableImageDeprecation; the stand-in adds it as EC2 documents it.
@Suite(.serialized) struct ImageLifecycleTests {
    static func deprecationTime(_ client: AWSClient, _ ami: String) throws -> Date? {
        let answer = try client.query(.ec2, "DescribeImages", ["ImageId.1": ami])
        guard let text = answer.path("imagesSet")?.all("item").first?.string("deprecationTime") else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    @Test func anImageIsDeprecatedInEveryRegionDaysAfterTheBakeAndOnlyWhenAsked() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(
                moto: moto, kilnYML: kilnYML("  regions: [us-east-1, us-west-2]\n  deprecate_after_days: 30"))
            let started = Date()
            let run = try project.bake()
            #expect(run.code == 0, "\(run.output)")
            let amis = try #require(try project.image()["amis"] as? [String: String])
            #expect(amis.count == 2)
            let expected = started.addingTimeInterval(30 * 86400)
            for (region, ami) in amis {
                let time = try #require(
                    try Self.deprecationTime(BakeProject.client(moto, region: region), ami), "\(region)")
                #expect(abs(time.timeIntervalSince(expected)) < 300, "\(region): \(time), expected \(expected)")
            }
            #expect(run.output.contains("deprecate: "))

            let plain = try BakeProject(moto: moto, kilnYML: kilnYML())
            try plain.writeBuild(content: "demo 2.0\n", version: "v2.0.0")
            let undeprecated = try plain.bake()
            #expect(undeprecated.code == 0, "\(undeprecated.output)")
            let ami = try #require(try plain.image()["amiID"] as? String)
            #expect(try Self.deprecationTime(plain.client, ami) == nil, "off by default")
        }
    }

    @Test func aDayCountOutOfRangeIsRefused() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML("  deprecate_after_days: 0"))
            let run = try project.bake()
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains("bake.deprecate_after_days"))
            #expect(try project.kilnImages().isEmpty)
        }
    }
}
