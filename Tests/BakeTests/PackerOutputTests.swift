import Bake
import Foundation
import KilnCore
import Testing

/// Machine-readable lines as Packer 1.6.6 printed them against the moto
/// stand-in (copied from real runs; the multi-region one from a build with
/// `ami_regions`, whose id Packer joins with an escaped comma).
@Suite struct PackerOutputTests {
    static let success = """
        1796085251,,ui,say,==> amazon-ebs.kiln: No volumes to clean up%!(PACKER_COMMA) skipping
        1796085251,,ui,say,Build 'amazon-ebs.kiln' finished after 716 milliseconds 619 microseconds.
        1796085251,amazon-ebs.kiln,artifact-count,1
        1796085251,amazon-ebs.kiln,artifact,0,builder-id,mitchellh.amazonebs
        1796085251,amazon-ebs.kiln,artifact,0,id,us-east-1:ami-744b40d589b41cee8
        1796085251,amazon-ebs.kiln,artifact,0,string,AMIs were created:\\nus-east-1: ami-744b40d589b41cee8\\n
        1796085251,amazon-ebs.kiln,artifact,0,files-count,0
        1796085251,amazon-ebs.kiln,artifact,0,end
        """

    static let failure = """
        1796085264,,ui,error,==> amazon-ebs.kiln: Error querying AMI: \
        InvalidAMIID.NotFound: The image id '[ami-00000000deadbeef0]' does not exist\\n==> amazon-ebs.kiln: \
        \tstatus code: 400%!(PACKER_COMMA) request id: request-id
        1796085264,,error-count,1
        1796085264,amazon-ebs.kiln,error,Error querying AMI: \
        InvalidAMIID.NotFound: The image id '[ami-00000000deadbeef0]' does not exist\\n\tstatus code: \
        400%!(PACKER_COMMA) request id: request-id
        1796085264,,ui,say,\\n==> Builds finished but no artifacts were created.
        """

    @Test func artifactLineGivesTheAMI() {
        let output = PackerOutput(text: Self.success)
        #expect(output.imageArtifact?.amisByRegion == ["us-east-1": "ami-744b40d589b41cee8"])
        #expect(output.imageArtifact?.string == "AMIs were created:\nus-east-1: ami-744b40d589b41cee8\n")
        #expect(output.failureMessage == nil)
    }

    @Test func severalRegionsInOneIdAndTheArtifactChosenByBuilderID() {
        // A manifest post-processor's artifact comes first; the AMI one is found by its builder id.
        let text = """
            1,amazon-ebs.kiln,artifact,0,builder-id,packer.post-processor.manifest
            1,amazon-ebs.kiln,artifact,0,id,packer-manifest.json
            1,amazon-ebs.kiln,artifact,1,builder-id,mitchellh.amazonebs
            1,amazon-ebs.kiln,artifact,1,id,eu-west-1:ami-0aaa%!(PACKER_COMMA)\
            us-east-1:ami-0bbb%!(PACKER_COMMA)us-west-2:ami-0ccc
            1,amazon-ebs.kiln,artifact,1,end
            """
        let output = PackerOutput(text: text)
        #expect(output.artifacts.count == 2)
        #expect(output.imageArtifact?.index == 1)
        #expect(
            output.imageArtifact?.amisByRegion == [
                "eu-west-1": "ami-0aaa", "us-east-1": "ami-0bbb", "us-west-2": "ami-0ccc",
            ])
    }

    @Test func errorLinesGivePackersOwnMessage() throws {
        let output = PackerOutput(text: Self.failure)
        #expect(output.imageArtifact == nil)
        #expect(output.errorCount == 1)
        let message = try #require(output.failureMessage)
        #expect(message.hasPrefix("amazon-ebs.kiln: Error querying AMI: InvalidAMIID.NotFound"))
        #expect(message.contains("status code: 400, request id"))
        #expect(PackerFailureKind.exitStatus(for: message) == .serviceUnavailable)
    }

    @Test func capacityAndThrottlingAreTemporary() {
        #expect(
            PackerFailureKind.exitStatus(
                for:
                    """
                    Error launching source instance: InsufficientInstanceCapacity: \
                    We currently do not have sufficient t3.micro capacity
                    """
            ) == .temporaryFailure)
        #expect(PackerFailureKind.exitStatus(for: "RequestLimitExceeded: Request limit exceeded.") == .temporaryFailure)
        #expect(PackerFailureKind.exitStatus(for: "UnauthorizedOperation: You are not authorized") == .permissionDenied)
    }

    /// Issue 18, item 2: the artifact lines of every amazon builder, written by
    /// hand from Packer's documented machine-readable format ("Machine-Readable
    /// Output", website/content/docs/commands/index.mdx in hashicorp/packer:
    /// `timestamp,target,artifact,<index>,<key>,<value>`, ending with `end`; the
    /// page's own example has a second, empty artifact) and the amazon plugin's
    /// artifacts (hashicorp/packer-plugin-amazon: each builder's `BuilderId`
    /// constant; builder/common/artifact.go's `Id()` joins sorted `region:ami`
    /// pairs with commas and `String()` says "AMIs were created:";
    /// builder/ebsvolume/artifact.go's `Id()` joins `region:vol-...` and
    /// `region:snap-...` and says "EBS Volumes were created:"). Before the fix,
    /// only `mitchellh.amazonebs` was understood.
    static func artifactLines(target: String, builderID: String, id: String, string: String) -> String {
        """
        1796152506,,ui,say,Build '\(target)' finished after 2 minutes 3 seconds.
        1796152506,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:
        1796152506,\(target),artifact-count,2
        1796152506,\(target),artifact,0,builder-id,\(builderID)
        1796152506,\(target),artifact,0,id,\(id)
        1796152506,\(target),artifact,0,string,\(string)
        1796152506,\(target),artifact,0,files-count,0
        1796152506,\(target),artifact,0,end
        1796152506,,ui,say,--> \(target): \(string)
        1796152506,\(target),artifact,1,builder-id,
        1796152506,\(target),artifact,1,id,
        1796152506,\(target),artifact,1,string,
        1796152506,\(target),artifact,1,files-count,0
        1796152506,\(target),artifact,1,end
        """
    }

    @Test(arguments: [
        ("amazon-ebs.team", "mitchellh.amazonebs", AmazonBuilder.ebs),
        ("amazon-ebssurrogate.team", "mitchellh.amazon.ebssurrogate", .ebsSurrogate),
        ("amazon-chroot.team", "mitchellh.amazon.chroot", .chroot),
        ("amazon-instance.team", "mitchellh.amazon.instance", .instance),
    ])
    func everyAmazonBuilderThatMakesAnAMIIsUnderstood(target: String, builderID: String, builder: AmazonBuilder) throws
    {
        let text = Self.artifactLines(
            target: target, builderID: builderID,
            id: "eu-west-1:ami-0aaa1111bbbb2222c%!(PACKER_COMMA)us-east-1:ami-0ddd3333eeee4444f",
            string: "AMIs were created:\\neu-west-1: ami-0aaa1111bbbb2222c\\nus-east-1: ami-0ddd3333eeee4444f\\n")
        let output = PackerOutput(text: text)
        #expect(output.artifacts.count == 2)
        let image = try #require(output.imageArtifact)
        #expect(image.builder == builder)
        #expect(image.target == target)
        #expect(image.amisByRegion == ["eu-west-1": "ami-0aaa1111bbbb2222c", "us-east-1": "ami-0ddd3333eeee4444f"])
        #expect(try output.image(in: "us-east-1") == "ami-0ddd3333eeee4444f")
    }

    @Test func aTemplateThatMakesNoAMIIsSaidSo() throws {
        // amazon-ebsvolume makes volumes and their snapshots, no AMI.
        let volumes = PackerOutput(
            text: Self.artifactLines(
                target: "amazon-ebsvolume.data", builderID: "mitchellh.amazon.ebsvolume",
                id: "us-east-1:snap-0123456789abcdef0%!(PACKER_COMMA)us-east-1:vol-0123456789abcdef0",
                string:
                    "EBS Volumes were created:\\n\\nus-east-1:snap-0123456789abcdef0\\nus-east-1:vol-0123456789abcdef0")
        )
        #expect(volumes.imageArtifact == nil)
        #expect(volumes.artifacts.first?.builder == .ebsVolume)
        #expect(volumes.artifacts.first?.amisByRegion == [:], "a volume is not an AMI")
        let error = try #require(throws: KilnError.self) { try volumes.image(in: "us-east-1") }
        #expect(error.exitStatus == .badConfiguration)
        #expect(error.message.contains("the template makes no AMI"))
        #expect(error.message.contains("amazon-ebsvolume.data (amazon-ebsvolume)"))
        #expect(error.message.contains("us-east-1:vol-0123456789abcdef0"))

        // Another builder altogether (the file builder: `packer.file`).
        let file = PackerOutput(
            text: Self.artifactLines(target: "file.x", builderID: "packer.file", id: "out.txt", string: "out.txt"))
        let other = try #require(throws: KilnError.self) { try file.image(in: "us-east-1") }
        #expect(other.message.contains("the template makes no AMI"))
        #expect(other.message.contains("file.x (packer.file)"))

        // No artifact at all.
        let none = try #require(throws: KilnError.self) { try PackerOutput(text: "").image(in: "us-east-1") }
        #expect(none.exitStatus == .badConfiguration)
        #expect(none.message.contains("the template makes no AMI: Packer reported no artifact"))
    }

    @Test func anAMIInAnotherRegionOnlyOrTwoAMIArtifactsAreRefused() throws {
        let elsewhere = PackerOutput(
            text: Self.artifactLines(
                target: "amazon-ebs.team", builderID: "mitchellh.amazonebs", id: "eu-west-1:ami-0aaa1111bbbb2222c",
                string: "AMIs were created:\\neu-west-1: ami-0aaa1111bbbb2222c\\n"))
        let error = try #require(throws: KilnError.self) { try elsewhere.image(in: "us-east-1") }
        #expect(error.exitStatus == .badConfiguration)
        #expect(error.message.contains("in eu-west-1, not in us-east-1"))

        let two = PackerOutput(
            text: Self.artifactLines(
                target: "amazon-ebs.a", builderID: "mitchellh.amazonebs", id: "us-east-1:ami-0aaa1111bbbb2222c",
                string: "AMIs were created:")
                + "\n"
                + Self.artifactLines(
                    target: "amazon-chroot.b", builderID: "mitchellh.amazon.chroot",
                    id: "us-east-1:ami-0ddd3333eeee4444f", string: "AMIs were created:"))
        let twice = try #require(throws: KilnError.self) { try two.image(in: "us-east-1") }
        #expect(twice.message.contains("amazon-ebs.a, amazon-chroot.b"))
    }

    @Test func linesThatAreNotRecordsAreIgnored() {
        let output = PackerOutput(text: "panic: something\ngoroutine 1 [running]:\n,,ui,say,x\n")
        #expect(output.artifacts.isEmpty && output.failureMessage == nil)
    }
}
