import Foundation
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

@testable import KilnAWS

// The typed EC2 / Auto Scaling / ELBv2 / SSM operations against the moto
// stand-in on loopback, each test in its own moto with its own world (VPC,
// app AMI, launch templates, target groups and ASGs for `test` and `live`).

/// A moto stand-in with the world built in it, and a client for it.
private struct MotoWorld {
    let moto: StandIn
    let client: AWSClient
    let outputs: [String: Any]

    /// A terraform-output value (`{"value": ...}`) that is a string.
    func string(_ key: String) throws -> String {
        guard let value = (outputs[key] as? [String: Any])?["value"] as? String else {
            throw KilnError.internalError("world output \(key) is missing")
        }
        return value
    }

    func strings(_ key: String) throws -> [String] {
        guard let value = (outputs[key] as? [String: Any])?["value"] as? [String] else {
            throw KilnError.internalError("world output \(key) is missing")
        }
        return value
    }

    /// A client for the same moto with another retry policy.
    func client(retry: RetryPolicy) -> AWSClient {
        operationsClient(moto.url, retry: retry)
    }
}

private func operationsClient(
    _ url: String, retry: RetryPolicy = RetryPolicy(baseDelay: 0.01, maxDelay: 0.1)
) -> AWSClient {
    AWSClient(
        endpoints: AWSEndpoints(region: "us-east-1", general: url),
        credentials: .fixed(AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")),
        http: HTTPClient(settings: HTTPSettings()), retry: retry)
}

private func withWorld<T>(_ body: (MotoWorld) throws -> T) throws -> T {
    try withStandIn("moto") { moto in
        let outputs = try StandIn.runOnce("world", ["--endpoint", moto.url])
        return try body(MotoWorld(moto: moto, client: operationsClient(moto.url), outputs: outputs))
    }
}

/// The error a call threw, or nil.
private func thrownError(_ body: () throws -> Void) -> (any Error)? {
    do { try body() } catch { return error }
    return nil
}

@Suite struct ServiceOperationTests {
    // MARK: EC2 images, tags, snapshots

    @Test func imageCopyTagsPermissionsAndCleanUp() throws {
        try withWorld { world in
            let client = world.client
            let appAMI = try world.string("app_ami_id")

            let source = try #require(client.describeImages(imageIDs: [appAMI]).first)
            #expect(source.id == appAMI)
            #expect(source.state == "available")
            #expect(source.tags["kiln:role"] == "app")
            #expect(source.creationDate != nil)
            #expect(!source.snapshotIDs.isEmpty)

            let copyID = try client.copyImage(sourceImageID: appAMI, sourceRegion: "us-east-1", name: "demo-app-copy")
            #expect(copyID.hasPrefix("ami-") && copyID != appAMI)

            // Tags round trip: set, read back, remove one, read back.
            try client.createTags(resources: [copyID], tags: ["kiln:release": "r42", "kiln:app": "demo"])
            var copy = try #require(client.describeImages(imageIDs: [copyID]).first)
            #expect(copy.name == "demo-app-copy")
            #expect(copy.tags == ["kiln:release": "r42", "kiln:app": "demo"])
            try client.deleteTags(resources: [copyID], keys: ["kiln:release"])
            copy = try #require(client.describeImages(imageIDs: [copyID]).first)
            #expect(copy.tags == ["kiln:app": "demo"])

            // Filters and owners: the copy is found by its tag among our own images.
            let found = try client.describeImages(owners: ["self"], filters: [(name: "tag:kiln:app", values: ["demo"])])
            #expect(Set(found.map(\.id)) == [appAMI, copyID])

            // Launch permission for another account, read back with DescribeImageAttribute.
            try client.addLaunchPermission(imageID: copyID, accountIDs: ["111122223333"])
            let attribute = try client.query(
                .ec2, "DescribeImageAttribute", ["ImageId": copyID, "Attribute": "launchPermission"])
            let userIDs = attribute.first(named: "launchPermission")?.all("item").compactMap { $0.string("userId") }
            #expect(userIDs == ["111122223333"])

            // The copy's snapshot, with tags, then deregister and delete it.
            let snapshotID = try #require(copy.snapshotIDs.first)
            try client.createTags(resources: [snapshotID], tags: ["kiln:release": "r42"])
            let snapshot = try #require(client.describeSnapshots(snapshotIDs: [snapshotID]).first)
            #expect(snapshot.id == snapshotID)
            #expect(snapshot.state == "completed")
            #expect(snapshot.tags == ["kiln:release": "r42"])
            let byTag = try client.describeSnapshots(
                owners: ["self"], filters: [(name: "tag:kiln:release", values: ["r42"])])
            #expect(byTag.map(\.id) == [snapshotID])

            try client.deregisterImage(copyID)
            #expect(try client.describeImages(owners: ["self"]).map(\.id).contains(copyID) == false)
            try client.deleteSnapshot(snapshotID)
            #expect(try client.describeSnapshots(owners: ["self"]).map(\.id).contains(snapshotID) == false)
        }
    }

    @Test func describeImagesReturnsMoreImagesThanOnePage() throws {
        try withWorld { world in
            let client = world.client
            let appAMI = try world.string("app_ami_id")
            var copies: Set<String> = []
            for index in 1...12 {
                copies.insert(
                    try client.copyImage(sourceImageID: appAMI, sourceRegion: "us-east-1", name: "batch-\(index)"))
            }
            // MaxResults=5: every page is followed. (moto 5.2.5 does not page
            // DescribeImages, so here it answers all at once; the paging
            // itself is proven on DescribeInstances and DescribeAutoScalingGroups.)
            let images = try client.describeImages(
                owners: ["self"], filters: [(name: "name", values: ["batch-*"])], pageSize: 5)
            #expect(Set(images.map(\.id)) == copies)
            #expect(images.count == 12)
        }
    }

    // MARK: EC2 instances

    @Test func describeInstancesFollowsEveryPageAndTerminates() throws {
        try withWorld { world in
            let client = world.client
            let appAMI = try world.string("app_ami_id")
            let subnet = try #require(world.strings("subnet_ids").first)
            // 12 more reservations (set-up through the raw Query call).
            var launched: [String] = []
            for _ in 1...12 {
                let answer = try client.query(
                    .ec2, "RunInstances",
                    [
                        "ImageId": appAMI, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.micro",
                        "SubnetId": subnet,
                    ],
                    mutation: .once)
                launched.append(try #require(answer.first(named: "instanceId")?.text))
            }

            let before = client.calls.snapshot["ec2:DescribeInstances"] ?? 0
            let paged = try client.describeInstances(pageSize: 5)
            let pages = (client.calls.snapshot["ec2:DescribeInstances"] ?? 0) - before
            // 4 ASG instances + 12 launched, in at least 14 reservations: 3+ pages of 5.
            #expect(paged.count == 16)
            #expect(Set(paged.map(\.id)).isSuperset(of: launched))
            #expect(pages >= 3)

            // Filters: the test ASG's instances, running, on 127.0.1.x, from the app AMI.
            let asgName = try world.string("test_asg_name")
            let members = try client.describeInstances(filters: [
                (name: "tag:aws:autoscaling:groupName", values: [asgName])
            ])
            #expect(members.count == 2)
            for instance in members {
                #expect(instance.state == "running")
                #expect(instance.imageID == appAMI)
                #expect(instance.privateIPAddress?.hasPrefix("127.0.1.") == true)
                #expect(instance.tags["kiln:environment"] == "test")
            }

            // By ids, then terminate two of the launched ones.
            let two = Array(launched.prefix(2))
            #expect(Set(try client.describeInstances(instanceIDs: two).map(\.id)) == Set(two))
            let changes = try client.terminateInstances(two)
            #expect(Set(changes.map(\.instanceID)) == Set(two))
            #expect(changes.allSatisfy { $0.previousState == "running" })
            let after = try client.describeInstances(instanceIDs: two)
            #expect(after.allSatisfy { $0.state == "terminated" || $0.state == "shutting-down" })
        }
    }

    // MARK: EC2 launch templates

    @Test func launchTemplateVersionRoundTrip() throws {
        try withWorld { world in
            let client = world.client
            let templateID = try world.string("test_launch_template_id")
            let templateName = try world.string("test_launch_template_name")
            let appAMI = try world.string("app_ami_id")

            let template = try #require(client.describeLaunchTemplates(ids: [templateID]).first)
            #expect(template.name == templateName)
            #expect(template.defaultVersion == 1 && template.latestVersion == 1)
            #expect(try client.describeLaunchTemplates(names: [templateName]).map(\.id) == [templateID])

            let first = try #require(
                client.describeLaunchTemplateVersions(.name(templateName), versions: ["$Default"]).first)
            #expect(first.versionNumber == 1 && first.isDefault)
            #expect(first.imageID == appAMI)
            #expect(first.instanceTags["kiln:environment"] == "test")

            let newAMI = try client.copyImage(sourceImageID: appAMI, sourceRegion: "us-east-1", name: "demo-app-r2")
            let userData = Array("#cloud-config\nruncmd: [echo r2]\n".utf8)
            let tags = ["kiln:environment": "test", "kiln:app": "demo", "kiln:release": "r2", "Name": templateName]
            let created = try client.createLaunchTemplateVersion(
                .id(templateID), sourceVersion: "1", imageID: newAMI, userData: userData, instanceTags: tags,
                versionDescription: "release r2")
            #expect(created.versionNumber == 2)
            #expect(created.templateID == templateID)
            #expect(created.imageID == newAMI)

            // Described back, as $Latest, by id.
            let latest = try #require(
                client.describeLaunchTemplateVersions(.id(templateID), versions: ["$Latest"]).first)
            #expect(latest.versionNumber == 2 && !latest.isDefault)
            #expect(latest.imageID == newAMI)
            #expect(latest.userDataBytes == userData)
            #expect(latest.instanceTags == tags)
            #expect(try client.describeLaunchTemplateVersions(.id(templateID)).map(\.versionNumber).sorted() == [1, 2])

            // ModifyLaunchTemplate: version 2 becomes the default.
            let modified = try client.setDefaultLaunchTemplateVersion(.id(templateID), defaultVersion: "2")
            #expect(modified.defaultVersion == 2)
            let byDefault = try #require(
                client.describeLaunchTemplateVersions(.id(templateID), versions: ["$Default"]).first)
            #expect(byDefault.versionNumber == 2 && byDefault.isDefault)
            #expect(try client.describeLaunchTemplates(ids: [templateID]).first?.defaultVersion == 2)
        }
    }

    // MARK: Auto Scaling

    @Test func rollOutAVersionOntoTheGroup() throws {
        try withWorld { world in
            let client = world.client
            let asgName = try world.string("test_asg_name")
            let templateID = try world.string("test_launch_template_id")
            let appAMI = try world.string("app_ami_id")

            var group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            #expect(group.minSize == 2 && group.maxSize == 4 && group.desiredCapacity == 2)
            #expect(
                group.launchTemplate
                    == LaunchTemplateSpecification(
                        id: templateID, name: try world.string("test_launch_template_name"), version: "1"))
            #expect(group.targetGroupARNs == [try world.string("test_target_group_arn")])
            #expect(group.tags["kiln:environment"] == "test")
            #expect(group.instances.count == 2)
            #expect(group.instances.allSatisfy { $0.lifecycleState == "InService" && $0.healthStatus == "Healthy" })
            let oldInstances = Set(group.instances.map(\.id))

            // A new version with a new image, and the group pinned to it exactly.
            let newAMI = try client.copyImage(sourceImageID: appAMI, sourceRegion: "us-east-1", name: "demo-app-r2")
            let version = try client.createLaunchTemplateVersion(
                .id(templateID), sourceVersion: "1", imageID: newAMI, instanceTags: ["kiln:release": "r2"])
            try client.updateAutoScalingGroup(
                asgName, minSize: 1, maxSize: 6,
                launchTemplate: LaunchTemplateSpecification(id: templateID, version: String(version.versionNumber)))
            group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            #expect(group.launchTemplate?.id == templateID)
            #expect(group.launchTemplate?.version == "2")
            #expect(group.minSize == 1 && group.maxSize == 6 && group.desiredCapacity == 2)

            // Scale out: a third instance, launched from the new image.
            try client.setDesiredCapacity(asgName, 3)
            group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            #expect(group.desiredCapacity == 3)
            #expect(group.instances.count == 3)
            let newInstances = Set(group.instances.map(\.id)).subtracting(oldInstances)
            #expect(newInstances.count == 1)
            let described = try client.describeInstances(instanceIDs: Array(newInstances))
            #expect(described.map(\.imageID) == [newAMI])
            #expect(described.first?.tags["kiln:release"] == "r2")

            // SetInstanceHealth shows in the group.
            let old = try #require(oldInstances.sorted().first)
            try client.setInstanceHealth(old, .unhealthy)
            group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            #expect(group.instances.first { $0.id == old }?.healthStatus == "Unhealthy")

            // Terminate an old one, shrinking the group.
            let activity = try client.terminateInstanceInAutoScalingGroup(old, shouldDecrementDesiredCapacity: true)
            #expect(activity?.id.isEmpty == false)
            group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            #expect(group.desiredCapacity == 2)
            #expect(group.instances.count == 2)
            #expect(!group.instances.map(\.id).contains(old))
        }
    }

    @Test func describeAutoScalingGroupsFollowsEveryPage() throws {
        try withWorld { world in
            let client = world.client
            let before = client.calls.snapshot["autoscaling:DescribeAutoScalingGroups"] ?? 0
            let groups = try client.describeAutoScalingGroups(pageSize: 1)
            let pages = (client.calls.snapshot["autoscaling:DescribeAutoScalingGroups"] ?? 0) - before
            #expect(Set(groups.map(\.name)) == [try world.string("test_asg_name"), try world.string("live_asg_name")])
            #expect(pages == 2)
        }
    }

    @Test func suspendResumeProcessesAndGroupTags() throws {
        try withWorld { world in
            let client = world.client
            let asgName = try world.string("live_asg_name")
            func group() throws -> AutoScalingGroup {
                try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            }

            #expect(try group().suspendedProcesses.isEmpty)
            try client.suspendProcesses(asgName, ["Launch", "Terminate", "ReplaceUnhealthy"])
            #expect(Set(try group().suspendedProcesses) == ["Launch", "Terminate", "ReplaceUnhealthy"])
            try client.resumeProcesses(asgName, ["Launch"])
            #expect(Set(try group().suspendedProcesses) == ["Terminate", "ReplaceUnhealthy"])
            try client.resumeProcesses(asgName)
            #expect(try group().suspendedProcesses.isEmpty)

            try client.createOrUpdateTags(
                autoScalingGroup: asgName, tags: ["kiln:release": "r7", "kiln:rotation": "running"],
                propagateAtLaunch: false)
            var tags = try group().tags
            #expect(tags["kiln:release"] == "r7" && tags["kiln:rotation"] == "running")
            #expect(tags["kiln:environment"] == "live")
            try client.createOrUpdateTags(
                autoScalingGroup: asgName, tags: ["kiln:release": "r8"], propagateAtLaunch: true)
            #expect(try group().tags["kiln:release"] == "r8")
            try client.deleteTags(autoScalingGroup: asgName, keys: ["kiln:rotation"])
            tags = try group().tags
            #expect(tags["kiln:rotation"] == nil)
            #expect(tags["kiln:release"] == "r8")
        }
    }

    @Test func lifecycleHooks() throws {
        try withWorld { world in
            let asgName = try world.string("test_asg_name")
            _ = try world.client.query(
                .autoscaling, "PutLifecycleHook",
                [
                    "AutoScalingGroupName": asgName, "LifecycleHookName": "kiln-drain",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "HeartbeatTimeout": "120",
                    "DefaultResult": "CONTINUE",
                ],
                mutation: .idempotent)
            let hooks = try world.client.describeLifecycleHooks(asgName)
            #expect(
                hooks == [
                    LifecycleHook(
                        name: "kiln-drain", autoScalingGroupName: asgName,
                        transition: "autoscaling:EC2_INSTANCE_TERMINATING",
                        heartbeatTimeout: 120, globalTimeout: hooks.first?.globalTimeout, defaultResult: "CONTINUE")
                ])
            #expect(try world.client.describeLifecycleHooks(asgName, names: ["other"]).isEmpty)

            // moto 5.2.5 has no CompleteLifecycleAction; the stand-in gives it
            // AWS's (standins/moto_standin.py). With no action waiting: AWS's
            // ValidationError (HTTP 400), a refusal (69).
            let client = world.client(retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.001, maxDelay: 0.001))
            let group = try #require(client.describeAutoScalingGroups(names: [asgName]).first)
            let instance = try #require(group.instances.first?.id)
            let error = thrownError {
                try client.completeLifecycleAction(
                    asgName, hookName: "kiln-drain", instanceID: instance, result: .proceed)
            }
            let awsError = try #require(error as? AWSError)
            #expect(awsError.action == "CompleteLifecycleAction")
            #expect(awsError.httpStatus == 400)
            #expect(awsError.exitStatus == .serviceUnavailable)
            // Scaled in, an instance waits on the hook; completing its action lets it go.
            try client.updateAutoScalingGroup(asgName, minSize: 0, desiredCapacity: group.desiredCapacity - 1)
            let waiting = try #require(
                client.describeAutoScalingGroups(names: [asgName]).first?.instances.first {
                    $0.lifecycleState == .terminatingWait
                })
            try client.completeLifecycleAction(
                asgName, hookName: "kiln-drain", instanceID: waiting.id, result: .proceed)
            let after = try client.describeAutoScalingGroups(names: [asgName]).first?.instances
            #expect(after?.first { $0.id == waiting.id }?.lifecycleState == .terminatingProceed)
        }
    }

    // MARK: ELBv2

    @Test func targetGroupsAndTargetHealth() throws {
        try withWorld { world in
            let client = world.client
            let testARN = try world.string("test_target_group_arn")
            let liveARN = try world.string("live_target_group_arn")

            let byARN = try client.describeTargetGroups(arns: [testARN])
            #expect(byARN.count == 1)
            let group = try #require(byARN.first)
            #expect(group.arn == testARN)
            #expect(group.name == "demo-test")
            #expect(group.port == 8080 && group.protocol == "HTTP")
            #expect(group.vpcID == (try world.string("vpc_id")))
            #expect(group.healthCheckPath == "/health")

            #expect(try client.describeTargetGroups(names: ["demo-live"]).map(\.arn) == [liveARN])
            // PageSize 1: every page (moto 5.2.5 ignores PageSize and answers all at once).
            #expect(Set(try client.describeTargetGroups(pageSize: 1).map(\.arn)) == [testARN, liveARN])

            // The group's registered targets are the ASG's instances (moto: all healthy).
            let asg = try #require(client.describeAutoScalingGroups(names: [try world.string("test_asg_name")]).first)
            let health = try client.describeTargetHealth(targetGroupARN: testARN)
            #expect(Set(health.map(\.targetID)) == Set(asg.instances.map(\.id)))
            #expect(health.allSatisfy { $0.state == "healthy" && $0.port == 8080 })
            let one = try #require(asg.instances.first?.id)
            #expect(try client.describeTargetHealth(targetGroupARN: testARN, targetIDs: [one]).map(\.targetID) == [one])
        }
    }

    // MARK: SSM

    @Test func parameterStorePutAndGet() throws {
        try withStandIn("moto") { moto in
            let client = operationsClient(moto.url)
            let name = "/kiln/demo/test/release"
            #expect(try client.putParameter(name, value: "r1", overwrite: false) == 1)

            // Without Overwrite an existing parameter is refused (and the call is sent once).
            let refused = try #require(
                thrownError { try client.putParameter(name, value: "r2", overwrite: false) } as? AWSError)
            #expect(refused.code == "ParameterAlreadyExists")

            #expect(try client.putParameter(name, value: "r2", overwrite: true, description: "current release") == 2)
            let parameter = try client.getParameter(name, withDecryption: true)
            #expect(parameter == SSMParameter(name: name, value: "r2", type: "String", version: 2))

            let missing = try #require(thrownError { _ = try client.getParameter("/kiln/none") } as? AWSError)
            #expect(missing.code == "ParameterNotFound")
        }
    }

    // MARK: decoding

    @Test func aMissingRequiredFieldIsAMalformedResponse() throws {
        let decoder = AnswerDecoder(.ec2, "DescribeImages")
        let noState = try XMLReader.parse("<item><imageId>ami-1</imageId></item>")
        let error = try #require(thrownError { _ = try decoder.image(noState) } as? AWSMalformedResponse)
        #expect(error.action == "DescribeImages")
        #expect(error.description.contains("imageState"))

        let groups = AnswerDecoder(.autoscaling, "DescribeAutoScalingGroups")
        let noSize = try XMLReader.parse(
            "<member><AutoScalingGroupName>g</AutoScalingGroupName><MinSize>1</MinSize></member>")
        #expect(thrownError { _ = try groups.autoScalingGroup(noSize) } is AWSMalformedResponse)
        let badNumber = try XMLReader.parse(
            """
            <member><AutoScalingGroupName>g</AutoScalingGroupName><MinSize>one</MinSize>\
            <MaxSize>1</MaxSize><DesiredCapacity>1</DesiredCapacity></member>
            """
        )
        #expect(thrownError { _ = try groups.autoScalingGroup(badNumber) } is AWSMalformedResponse)
    }

    @Test func anOverridesOwnLaunchTemplateIsDecoded() throws {
        // The answer's shape from the EC2 Auto Scaling API Reference
        // (DescribeAutoScalingGroups, MixedInstancesPolicy > LaunchTemplate >
        // Overrides, each a LaunchTemplateOverrides: InstanceType or
        // InstanceRequirements, optional LaunchTemplateSpecification), with the
        // user guide's example of a Graviton type on its own template ("Use
        // multiple launch templates", ec2-auto-scaling-mixed-instances-groups-launch-template-overrides).
        let group = try XMLReader.parse(
            """
            <member><AutoScalingGroupName>g</AutoScalingGroupName><MinSize>1</MinSize><MaxSize>2</MaxSize>\
            <DesiredCapacity>1</DesiredCapacity><MixedInstancesPolicy><LaunchTemplate>\
            <LaunchTemplateSpecification><LaunchTemplateId>lt-x86</LaunchTemplateId><Version>3</Version>\
            </LaunchTemplateSpecification><Overrides>\
            <member><InstanceType>c5.xlarge</InstanceType></member>\
            <member><InstanceType>c6g.xlarge</InstanceType><LaunchTemplateSpecification>\
            <LaunchTemplateName>arm</LaunchTemplateName><Version>$Latest</Version>\
            </LaunchTemplateSpecification></member>\
            <member><InstanceRequirements><VCpuCount><Min>2</Min></VCpuCount></InstanceRequirements></member>\
            </Overrides></LaunchTemplate></MixedInstancesPolicy></member>
            """
        )
        let decoded = try AnswerDecoder(.autoscaling, "DescribeAutoScalingGroups").autoScalingGroup(group)
        #expect(decoded.usesMixedInstancesPolicy && decoded.launchTemplate?.id == "lt-x86")
        #expect(
            decoded.launchTemplateOverrides == [
                LaunchTemplateOverride(instanceType: "c5.xlarge"),
                LaunchTemplateOverride(
                    instanceType: "c6g.xlarge",
                    launchTemplate: LaunchTemplateSpecification(name: "arm", version: "$Latest")),
                LaunchTemplateOverride(hasInstanceRequirements: true),
            ])
        let plain = try XMLReader.parse(
            """
            <member><AutoScalingGroupName>g</AutoScalingGroupName><MinSize>1</MinSize><MaxSize>2</MaxSize>\
            <DesiredCapacity>1</DesiredCapacity><LaunchTemplate><LaunchTemplateId>lt-x86</LaunchTemplateId>\
            </LaunchTemplate></member>
            """
        )
        #expect(
            try AnswerDecoder(.autoscaling, "DescribeAutoScalingGroups").autoScalingGroup(plain)
                .launchTemplateOverrides.isEmpty)
    }
}
