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
        #expect(output.amazonArtifact?.amisByRegion == ["us-east-1": "ami-744b40d589b41cee8"])
        #expect(output.amazonArtifact?.string == "AMIs were created:\nus-east-1: ami-744b40d589b41cee8\n")
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
        #expect(output.amazonArtifact?.index == 1)
        #expect(
            output.amazonArtifact?.amisByRegion == [
                "eu-west-1": "ami-0aaa", "us-east-1": "ami-0bbb", "us-west-2": "ami-0ccc",
            ])
    }

    @Test func errorLinesGivePackersOwnMessage() throws {
        let output = PackerOutput(text: Self.failure)
        #expect(output.amazonArtifact == nil)
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

    @Test func linesThatAreNotRecordsAreIgnored() {
        let output = PackerOutput(text: "panic: something\ngoroutine 1 [running]:\n,,ui,say,x\n")
        #expect(output.artifacts.isEmpty && output.failureMessage == nil)
    }
}
