import Bake
import Foundation
import KilnAWS
import KilnCore
import KilnTestSupport
import Testing

/// Real Packer 1.6.6 (`/usr/bin/packer`) against the moto stand-in, with
/// `communicator = "none"`: Packer launches, stops, snapshots and cleans up
/// in moto, and never connects to the address moto made up.
@Suite(.serialized) struct BakeTests {
    static let kilnTags = [
        "kiln:app", "kiln:role", "kiln:version", "kiln:commit", "kiln:pipeline", "kiln:bake-key", "kiln:source-ami",
        "kiln:built-at",
    ]

    @Test func appBakeTagsTheImageThenReusesItThenBakesAChangedArtifact() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            let base = project.stockSource
            let baseline = try project.allInstances().count

            let first = try project.bake()
            #expect(first.code == 0, "\(first.output)")
            let image = try project.image()
            let ami = try #require(image["amiID"] as? String)
            #expect(image["schema"] as? String == "kiln.image")
            #expect(image["outcome"] as? String == "baked")
            #expect(image["sourceAMI"] as? String == base)
            #expect(image["role"] as? String == "app")
            #expect(image["amis"] as? [String: String] == ["us-east-1": ami])
            #expect((image["packerSeconds"] as? Double ?? -1) >= 0)
            let name = try #require(image["name"] as? String)
            #expect(name.hasPrefix("demo-app-v1.0.0-") && name.hasSuffix("Z"))

            let made = try #require(try project.client.describeImages(imageIDs: [ami]).first)
            #expect(made.state == "available")
            #expect(made.name == name)
            for tag in Self.kilnTags { #expect(made.tags[tag]?.isEmpty == false, "tag \(tag) missing: \(made.tags)") }
            #expect(made.tags["kiln:bake-key"] == image["bakeKey"] as? String)
            #expect(made.tags["kiln:source-ami"] == base)
            #expect(made.tags["kiln:pipeline"] == "4242")
            #expect(made.tags["kiln:version"] == "v1.0.0")
            let snapshots = try project.client.describeSnapshots(snapshotIDs: made.snapshotIDs)
            #expect(!snapshots.isEmpty)
            for snapshot in snapshots { #expect(snapshot.tags["kiln:bake-key"] == made.tags["kiln:bake-key"]) }
            #expect(project.read("kiln/image.env") == "KILN_AMI_ID=\(ami)\nKILN_IMAGE_NAME=\(name)\n")
            #expect(first.output.contains("==> packer build kiln.pkr.hcl"))
            let instancesAfterFirst = try project.allInstances().count
            #expect(instancesAfterFirst == baseline + 1)

            // The same inputs: reused, nothing launched.
            let second = try project.bake()
            #expect(second.code == 0, "\(second.output)")
            let reused = try project.image()
            #expect(reused["outcome"] as? String == "reused")
            #expect(reused["amiID"] as? String == ami)
            #expect(reused["bakeKey"] as? String == image["bakeKey"] as? String)
            #expect(reused["packerSeconds"] == nil)
            #expect(try project.allInstances().count == instancesAfterFirst)
            #expect(!second.output.contains("packer build"))

            // A changed artifact is a new bake.
            try project.writeBuild(content: "demo 1.1\n", version: "v1.1.0")
            let third = try project.bake()
            #expect(third.code == 0, "\(third.output)")
            let changed = try project.image()
            #expect(changed["outcome"] as? String == "baked")
            #expect(changed["amiID"] as? String != ami)
            #expect(changed["bakeKey"] as? String != image["bakeKey"] as? String)
            #expect(try project.allInstances().count == instancesAfterFirst + 1)
        }
    }

    @Test func baseBakeStartsFromTheNewestUbuntuLTSImage() throws {
        try withStandIn("moto") { moto in
            // The defaults: Canonical's owner id and Ubuntu's name pattern. moto's
            // stock images hold trusty 14.04 (serial 20170727) and xenial 16.04
            // (serial 20170721): the newer release wins over the newer serial.
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            project.pinSource = false
            let xenial = try #require(
                try project.client.describeImages(
                    owners: ["099720109477"],
                    filters: [("name", ["ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"])]
                ).first?.id)

            let result = try project.bake(["--role", "base"])
            #expect(result.code == 0, "\(result.output)")
            let image = try project.image()
            #expect(image["role"] as? String == "base")
            #expect(image["sourceAMI"] as? String == xenial)
            let ami = try #require(image["amiID"] as? String)
            let made = try #require(try project.client.describeImages(imageIDs: [ami]).first)
            #expect(made.tags["kiln:role"] == "base")
            #expect(made.tags["kiln:source-ami"] == xenial)
            #expect((made.name ?? "").hasPrefix("demo-base-"))
        }
    }

    @Test func ubuntuReleaseOrderAndLTS() {
        #expect(SourceImage.isLTS("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240523"))
        #expect(!SourceImage.isLTS("ubuntu/images/hvm-ssd/ubuntu-mantic-23.10-amd64-server-20240401"))
        #expect(!SourceImage.isLTS("ubuntu/images/hvm-ssd/ubuntu-lunar-23.04-amd64-server-20240101"))
        #expect(SourceImage.release("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240301")! == (22, 4))
    }

    @Test func appRoleStartsFromTheNewestKilnBaseImageAndAFailingBuildLeavesNothing() throws {
        try withStandIn("moto") { moto in
            // Two Kiln base images of this account. moto reports every image made
            // in it with a `standard` root device, so Packer refuses the chosen
            // one: that is the "Packer fails before an image exists" case too.
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            project.pinSource = false
            try project.registerImage(
                name: "demo-base-20260101-20260101T000000Z",
                tags: ["kiln:role": "base", "kiln:built-at": "2026-01-01T00:00:00Z"])
            let newest = try project.registerImage(
                name: "demo-base-20260201-20260201T000000Z",
                tags: ["kiln:role": "base", "kiln:built-at": "2026-02-01T00:00:00Z"])
            try project.registerImage(name: "unrelated", tags: ["kiln:built-at": "2026-03-01T00:00:00Z"])

            let result = try project.bake()
            #expect(result.code == 69, "\(result.output)")
            #expect(result.output.contains("from \(newest) (newest Kiln base image: demo-base-20260201"))
            #expect(
                result.output.contains(
                    "The provided source AMI has an invalid root device type.\nExpected 'ebs', got 'standard'."))
            #expect(try project.kilnImages().isEmpty)
            #expect(try project.allInstances().allSatisfy { $0.state == "terminated" })
            #expect(project.read("kiln/image.json") == nil)
        }
    }

    @Test func noBaseImageIsAConfigurationError() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            project.pinSource = false
            let result = try project.bake()
            #expect(result.code == 78, "\(result.output)")
            #expect(result.output.contains("no base image in us-east-1"))
        }
    }

    @Test func aSourceAMIThatDoesNotExistFailsBeforeAnyLaunch() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML("  source_ami: ami-0000000000deadbee"))
            project.pinSource = false
            let result = try project.bake()
            #expect(result.code == 78, "\(result.output)")
            #expect(result.output.contains("ami-0000000000deadbee"))
            #expect(result.output.contains("kiln.yml"))
            #expect(try project.kilnImages().isEmpty)
            #expect(try project.allInstances().isEmpty)
            #expect(project.read("kiln/image.json") == nil)
        }
    }

    @Test func aFailedPackerBuildLeavesNoImageAndGivesPackersMessage() throws {
        try withStandIn("moto") { moto in
            // The image is made, then a post-processor fails: Packer keeps the
            // AMI and errors; Kiln must deregister it.
            let failing = try BakeProject.templateWithoutProvisioners().replacingOccurrences(
                of: "sources = [\"source.amazon-ebs.kiln\"]",
                with: """
                    sources = ["source.amazon-ebs.kiln"]
                      post-processor "shell-local" {
                        inline = ["echo 'disk check failed, refusing' >&2", "exit 3"]
                      }
                    """)
            let project = try BakeProject(moto: moto, kilnYML: kilnYML(), template: failing)
            let result = try project.bake()
            #expect(result.code == 69, "\(result.output)")
            #expect(result.output.contains("packer build failed"))
            #expect(result.output.contains("shell-local"))
            #expect(result.output.contains("Post-processor failed: Script exited with non-zero exit status: 3"))
            #expect(try project.kilnImages().isEmpty)
            #expect(
                try project.client.describeSnapshots(owners: ["self"], filters: [("tag-key", ["kiln:bake-key"])])
                    .isEmpty)
            let names = try project.client.describeImages(owners: ["self"]).compactMap(\.name)
            #expect(!names.contains { $0.hasPrefix("demo-app-") }, "\(names)")
            #expect(project.read("kiln/image.json") == nil)
        }
    }

    @Test func copiesToASecondRegionWithTagsSharesAndPublishesTheChannel() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(
                moto: moto,
                kilnYML: kilnYML(
                    """
                      regions: [us-east-1, us-west-2]
                      share_with: ["111122223333"]
                      channel: stable
                    """))
            let result = try project.bake()
            #expect(result.code == 0, "\(result.output)")
            let image = try project.image()
            let amis = try #require(image["amis"] as? [String: String])
            let home = try #require(amis["us-east-1"])
            let copy = try #require(amis["us-west-2"])
            #expect(home != copy)
            let west = BakeProject.client(moto, region: "us-west-2")
            let copied = try #require(try west.describeImages(imageIDs: [copy]).first)
            let original = try #require(try project.client.describeImages(imageIDs: [home]).first)
            for tag in Self.kilnTags { #expect(copied.tags[tag] == original.tags[tag], "\(tag)") }
            #expect(try project.client.getParameter("/kiln/demo/app/stable").value == home)
            #expect(try west.getParameter("/kiln/demo/app/stable").value == copy)
            let permissions = try project.client.query(
                .ec2, "DescribeImageAttribute", ["ImageId": home, "Attribute": "launchPermission"])
            #expect(
                permissions.path("launchPermission")?.all("item").compactMap { $0.string("userId") } == ["111122223333"]
            )

            // A re-run reuses both, copying nothing again.
            let again = try project.bake()
            #expect(again.code == 0, "\(again.output)")
            #expect(try project.image()["amis"] as? [String: String] == amis)
            #expect(try west.describeImages(owners: ["self"]).count == 1)
        }
    }

    @Test func pruneKeepsTheNewestAndWhatIsStillUsedAndDeletesSnapshots() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            var amis: [String] = []
            for version in ["v1.0.0", "v1.1.0", "v1.2.0"] {
                try project.writeBuild(content: "demo \(version)\n", version: version)
                let result = try project.bake()
                #expect(result.code == 0, "\(result.output)")
                amis.append(try #require(try project.image()["amiID"] as? String))
                Thread.sleep(forTimeInterval: 1.1)  // kiln:built-at has whole seconds
            }
            let (oldest, middle, newest) = (amis[0], amis[1], amis[2])
            // The oldest is still in a launch template.
            _ = try project.client.query(
                .ec2, "CreateLaunchTemplate",
                [
                    "LaunchTemplateName": "demo-live", "LaunchTemplateData.ImageId": oldest,
                    "LaunchTemplateData.InstanceType": "t3.micro",
                ], mutation: .once)
            let middleSnapshots = try #require(try project.client.describeImages(imageIDs: [middle]).first).snapshotIDs
            #expect(!middleSnapshots.isEmpty)

            let dry = try project.bake(["prune", "--keep", "1", "--dry-run"])
            #expect(dry.code == 0, "\(dry.output)")
            #expect(dry.output.contains("would deregister: \(middle)"))
            #expect(Set(try project.kilnImages().map(\.id)) == Set(amis))

            let pruned = try project.bake(["prune", "--keep", "1"])
            #expect(pruned.code == 0, "\(pruned.output)")
            let left = Set(try project.kilnImages().map(\.id))
            #expect(left == [oldest, newest])
            #expect(pruned.output.contains("launch template demo-live"))
            let snapshotsLeft = try project.client.describeSnapshots(owners: ["self"]).map(\.id)
            for snapshot in middleSnapshots { #expect(!snapshotsLeft.contains(snapshot)) }
        }
    }

    @Test func sigtermStopsPackerWithSIGINTAndLeavesNothing() throws {
        try withStandIn("moto") { moto in
            // A provisioner that takes a while (locally: no connection needed).
            let slow = try BakeProject.templateWithoutProvisioners().replacingOccurrences(
                of: "sources = [\"source.amazon-ebs.kiln\"]",
                with: """
                    sources = ["source.amazon-ebs.kiln"]
                      provisioner "shell-local" {
                        inline = ["echo kiln-test-provisioning", "sleep 60"]
                      }
                    """)
            let project = try BakeProject(moto: moto, kilnYML: kilnYML(), template: slow)
            let logFile = project.folder.file("bake.log")
            var environment = project.environment
            environment["KILN_TEST_LOG"] = logFile
            let child = try ChildProcess.spawn(
                Command(
                    "/bin/sh", ["-c", "exec \"$0\" 2>\"$KILN_TEST_LOG\"", TestPaths.product("kiln-bake")],
                    environment: environment),
                stdin: .null, stdout: .null, stderr: .null)
            // Wait until the builder instance runs and the provisioner has started.
            while !(project.read("bake.log") ?? "").contains("kiln-test-provisioning") {
                if let ended = child.poll() {
                    Issue.record("kiln-bake ended early: \(ended)\n\(project.read("bake.log") ?? "")"); return
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
            #expect(try project.allInstances().contains { $0.state == "running" })
            kill(child.pid, SIGTERM)
            let ended = child.wait()
            let log = project.read("bake.log") ?? ""
            #expect(ended == .exited(143), "\(log)")
            #expect(log.contains("Terminating the source AWS instance"), "Packer cleaned up after SIGINT")
            #expect(log.contains("cancelled by signal 15"))
            #expect(try project.allInstances().allSatisfy { $0.state == "terminated" })
            #expect(try project.kilnImages().isEmpty)
            #expect(project.read("kiln/image.json") == nil)
        }
    }
}
