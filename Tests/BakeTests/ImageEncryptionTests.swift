import Bake
import Foundation
import KilnAWS
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, regions and encryption: Kiln's CopyImage sent no KmsKeyId and
/// sharing added only the launch permission, so an encrypted AMI shared to
/// another account could not be launched there. Now `bake.regions` may give
/// each region its KMS key (CopyImage with Encrypted and KmsKeyId), sharing
/// adds the snapshots' createVolumePermission beside the launch permission
/// in every region, and the bake region's key reaches the template as
/// `encrypt_boot` and `kms_key_id`. moto checks the copies (its CopyImage
/// given Encrypted and KmsKeyId by the stand-in) and the permissions
/// (DescribeSnapshotAttribute); it does not check KMS grants for the other
/// account.
@Suite(.serialized) struct ImageEncryptionTests {
    /// A KMS key and its alias in moto's KMS of `region` (boto3, the
    /// stand-ins' client: Kiln itself speaks no KMS): the key's ARN.
    static func kmsKey(moto: StandIn, region: String, alias: String) throws -> String {
        let script = """
            import boto3, sys
            kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            key = kms.create_key()["KeyMetadata"]
            kms.create_alias(AliasName=sys.argv[3], TargetKeyId=key["KeyId"])
            print(key["Arn"])
            """
        let result = try ProcessRunner(log: LogWriter(sink: MemorySink(), style: .plain, secrets: SecretMask([])))
            .check(
                Command(
                    TestPaths.python, ["-c", script, moto.url, region, alias],
                    environment: ["PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"]),
                what: "create a KMS key", failure: .internalError, output: .capture)
        return String(decoding: result.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func copiesToTwoRegionsWithTheirKeysAndSharesEverySnapshot() throws {
        try withStandIn("moto") { moto in
            let west = try Self.kmsKey(moto: moto, region: "us-west-2", alias: "alias/kiln-west")
            let europe = try Self.kmsKey(moto: moto, region: "eu-west-1", alias: "alias/kiln-europe")
            let project = try BakeProject(
                moto: moto,
                kilnYML: kilnYML(
                    """
                      regions:
                        us-east-1: {}
                        us-west-2: {kms_key: alias/kiln-west}
                        eu-west-1: {kms_key: alias/kiln-europe}
                      share_with: ["111122223333"]
                    """))
            let run = try project.bake()
            #expect(run.code == 0, "\(run.output)")
            let amis = try #require(try project.image()["amis"] as? [String: String])
            #expect(Set(amis.keys) == ["us-east-1", "us-west-2", "eu-west-1"])
            for (region, arn) in [("us-west-2", west), ("eu-west-1", europe)] {
                let client = BakeProject.client(moto, region: region)
                let ami = try #require(amis[region])
                let image = try #require(try client.describeImages(imageIDs: [ami]).first)
                let snapshots = try client.query(.ec2, "DescribeSnapshots", ["SnapshotId.1": image.snapshotIDs[0]])
                let snapshot = try #require(snapshots.path("snapshotSet")?.all("item").first)
                #expect(snapshot.string("encrypted") == "true", "\(region): the copy is encrypted")
                #expect(snapshot.string("kmsKeyId") == arn, "\(region): with the region's key")
                #expect(run.output.contains("in \(region), encrypted with alias/"), "\(run.output)")
            }
            // Shared in every region: the image's launch permission and each
            // of its snapshots' createVolumePermission.
            for (region, ami) in amis {
                let client = BakeProject.client(moto, region: region)
                let launch = try client.query(
                    .ec2, "DescribeImageAttribute", ["ImageId": ami, "Attribute": "launchPermission"])
                #expect(
                    launch.path("launchPermission")?.all("item").compactMap { $0.string("userId") } == ["111122223333"],
                    "\(region)")
                let image = try #require(try client.describeImages(imageIDs: [ami]).first)
                #expect(!image.snapshotIDs.isEmpty)
                for snapshot in image.snapshotIDs {
                    let attribute = try client.query(
                        .ec2, "DescribeSnapshotAttribute",
                        ["SnapshotId": snapshot, "Attribute": "createVolumePermission"])
                    let users = attribute.path("createVolumePermission")?.all("item").compactMap { $0.string("userId") }
                    #expect(users == ["111122223333"], "\(region) \(snapshot): \(users ?? [])")
                }
            }
        }
    }

    /// The bake key did not hold the encryption: a project that added a
    /// region's KMS key reused its unencrypted image and copies. An
    /// encrypted bake is another key (an unencrypted one keeps its old key).
    @Test func addingARegionsKeyIsANewBakeWithAnEncryptedCopy() throws {
        try withStandIn("moto") { moto in
            _ = try Self.kmsKey(moto: moto, region: "us-west-2", alias: "alias/kiln-west")
            let project = try BakeProject(moto: moto, kilnYML: kilnYML("  regions: [us-east-1, us-west-2]"))
            let plain = try project.bake()
            #expect(plain.code == 0, "\(plain.output)")
            let first = try project.image()
            try kilnYML("  regions: {us-east-1: {}, us-west-2: {kms_key: alias/kiln-west}}").write(
                toFile: project.folder.file("kiln.yml"), atomically: true, encoding: .utf8)
            Thread.sleep(forTimeInterval: 1.1)  // image names hold the second
            let encrypted = try project.bake()
            #expect(encrypted.code == 0, "\(encrypted.output)")
            let second = try project.image()
            #expect(second["outcome"] as? String == "baked", "\(second)")
            #expect(second["bakeKey"] as? String != first["bakeKey"] as? String)
            let west = BakeProject.client(moto, region: "us-west-2")
            let copy = try #require((second["amis"] as? [String: String])?["us-west-2"])
            let image = try #require(try west.describeImages(imageIDs: [copy]).first)
            let snapshots = try west.query(.ec2, "DescribeSnapshots", ["SnapshotId.1": image.snapshotIDs[0]])
            #expect(snapshots.path("snapshotSet")?.all("item").first?.string("encrypted") == "true")
        }
    }

    /// The bake region's key (or `bake.encrypt_boot`) reaches the template
    /// as `encrypt_boot` and `kms_key_id`; the plain list form still works.
    @Test func theBakeRegionsKeyIsTheTemplatesEncryptBoot() throws {
        try withStandIn("moto") { moto in
            let cases: [(yml: String, encrypt: Bool, key: String)] = [
                ("  regions: {us-east-1: {kms_key: alias/kiln-home}, us-west-2: {}}", true, "alias/kiln-home"),
                ("  encrypt_boot: true\n  regions: [us-east-1, us-west-2]", true, ""),
                ("  regions: [us-east-1, us-west-2]", false, ""),
            ]
            for (yml, encrypt, key) in cases {
                let project = try BakeProject(moto: moto, kilnYML: kilnYML(yml))
                let packer = try FakePacker(in: project.folder.file("bin"))
                let run = try project.bake(["--packer", packer.path])
                #expect(run.code == 69, "the fake build fails: \(run.output)")
                let variables = packer.buildVariables
                #expect(variables["encrypt_boot"] as? Bool == encrypt, "\(yml): \(variables)")
                #expect(variables["kms_key_id"] as? String == key, "\(yml): \(variables)")
            }
        }
    }

    @Test func aRegionsEntryThatIsNotAMappingOrAnUnknownKeyIsRefused() throws {
        try withStandIn("moto") { moto in
            for (yml, said) in [
                ("  regions: {us-west-2: {kms: alias/x}}", "kms"),
                ("  regions: {us-west-2: [alias/x]}", "bake.regions.us-west-2"),
            ] {
                let project = try BakeProject(moto: moto, kilnYML: kilnYML(yml))
                let run = try project.bake()
                #expect(run.code == 78, "\(yml): \(run.output)")
                #expect(run.output.contains(said), "\(yml): \(run.output)")
                #expect(try project.kilnImages().isEmpty)
            }
        }
    }
}
