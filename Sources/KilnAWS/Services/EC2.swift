import Foundation
import KilnCore

// EC2 (API 2016-11-15): images, snapshots, instances, launch templates and
// tags. EC2's Query answers wrap lists in `<item>` elements and name request
// lists `Name.N`; answers page with `nextToken` (requests send `NextToken`).

/// An AMI.
public struct MachineImage: Sendable, Equatable {
    public let id: String
    public let name: String?
    public let state: ImageState
    /// ISO 8601, as EC2 writes it.
    public let creationDate: String?
    public let ownerID: String?
    public let tags: [String: String]
    public let blockDeviceMappings: [ImageBlockDevice]

    /// The EBS snapshots behind the image (to delete with it).
    public var snapshotIDs: [String] { blockDeviceMappings.compactMap(\.snapshotID) }
}

/// One block device of an AMI.
public struct ImageBlockDevice: Sendable, Equatable {
    public let deviceName: String?
    public let snapshotID: String?
}

/// An EBS snapshot.
public struct EBSSnapshot: Sendable, Equatable {
    public let id: String
    public let volumeID: String?
    public let state: SnapshotState
    public let startTime: String?
    public let description: String?
    public let ownerID: String?
    public let tags: [String: String]
}

/// An EC2 instance (reservations flattened away).
public struct EC2Instance: Sendable, Equatable {
    public let id: String
    public let imageID: String
    public let state: InstanceState
    public let privateIPAddress: String?
    public let privateDNSName: String?
    public let publicIPAddress: String?
    public let subnetID: String?
    public let availabilityZone: String?
    public let instanceType: String?
    public let launchTime: String?
    public let tags: [String: String]
}

/// An instance's state before and after a call such as TerminateInstances.
public struct InstanceStateChange: Sendable, Equatable {
    public let instanceID: String
    public let previousState: String
    public let currentState: String
}

/// A launch template (without its versions).
public struct LaunchTemplate: Sendable, Equatable {
    public let id: String
    public let name: String
    public let defaultVersion: Int
    public let latestVersion: Int
    public let tags: [String: String]
}

/// Which launch template a call is about.
public enum LaunchTemplateReference: Sendable, Equatable {
    case id(String)
    case name(String)

    func add(to parameters: inout QueryParameters) {
        switch self {
        case .id(let id): parameters.add("LaunchTemplateId", id)
        case .name(let name): parameters.add("LaunchTemplateName", name)
        }
    }
}

/// One version of a launch template, with the parts of its data a deploy reads.
public struct LaunchTemplateVersion: Sendable, Equatable {
    public let templateID: String
    public let templateName: String
    public let versionNumber: Int
    public let isDefault: Bool
    public let imageID: String?
    public let instanceType: String?
    /// Base64, as the template holds it.
    public let userData: String?
    /// The tags each resource type gets at launch (`TagSpecifications`), by resource type.
    public let tagSpecifications: [String: [String: String]]

    /// The tags instances launched from this version get.
    public var instanceTags: [String: String] { tagSpecifications["instance"] ?? [:] }

    /// The user data's bytes (nil when there is none or it is not base64).
    public var userDataBytes: [UInt8]? {
        guard let userData, let data = Data(base64Encoded: userData) else { return nil }
        return Array(data)
    }
}

/// An EC2 filter (`Filter.N.Name`, `Filter.N.Value.M`).
public typealias EC2Filter = (name: String, values: [String])

extension AWSClient {
    // MARK: images

    /// DescribeImages, every page. `pageSize` (MaxResults, 5...1000) is sent
    /// only without `imageIDs`, which EC2 does not page.
    public func describeImages(
        imageIDs: [String] = [], owners: [String] = [], filters: [EC2Filter] = [], pageSize: Int? = nil
    ) throws -> [MachineImage] {
        var parameters = QueryParameters()
        parameters.addList("ImageId", imageIDs)
        parameters.addList("Owner", owners)
        parameters.addFilters(filters)
        if imageIDs.isEmpty { parameters.add("MaxResults", pageSize) }
        let answer = AnswerDecoder(.ec2, "DescribeImages")
        return try queryPages(.ec2, "DescribeImages", parameters) { page in
            try answer.items(page, "imagesSet").map { try answer.image($0) }
        }
    }

    /// CopyImage; returns the new image's id. The `ClientToken` (made here
    /// when none is given) makes retries land once.
    public func copyImage(
        sourceImageID: String, sourceRegion: String, name: String, description: String? = nil,
        clientToken: String? = nil, encrypted: Bool = false, kmsKeyID: String? = nil
    ) throws -> String {
        var parameters = QueryParameters()
        parameters.add("SourceImageId", sourceImageID)
        parameters.add("SourceRegion", sourceRegion)
        parameters.add("Name", name)
        parameters.add("Description", description)
        parameters.add("ClientToken", clientToken ?? UUID().uuidString)
        // EC2 API reference, CopyImage: "If you specify a KMS key, you must
        // also set the encrypted state to true."
        if encrypted || kmsKeyID != nil { parameters.add("Encrypted", "true") }
        parameters.add("KmsKeyId", kmsKeyID)
        let root = try query(.ec2, "CopyImage", parameters, mutation: .idempotent)
        return try AnswerDecoder(.ec2, "CopyImage").required(root, "imageId")
    }

    public func deregisterImage(_ imageID: String) throws {
        _ = try query(.ec2, "DeregisterImage", ["ImageId": imageID], mutation: .idempotent)
    }

    /// ModifyImageAttribute: lets these accounts launch the image
    /// (`LaunchPermission.Add.N.UserId`).
    public func addLaunchPermission(imageID: String, accountIDs: [String]) throws {
        var parameters = QueryParameters()
        parameters.add("ImageId", imageID)
        for (index, account) in accountIDs.enumerated() {
            parameters.add("LaunchPermission.Add.\(index + 1).UserId", account)
        }
        _ = try query(.ec2, "ModifyImageAttribute", parameters, mutation: .idempotent)
    }

    /// EnableImageDeprecation: the image is deprecated from `date` on (EC2
    /// API reference: `DeprecateAt` in UTC as `YYYY-MM-DDTHH:MM:SSZ`, seconds
    /// rounded to the minute, so whole minutes are sent; not in the past, at
    /// most 10 years ahead). Sent again, it sets the new time.
    public func enableImageDeprecation(imageID: String, at date: Date) throws {
        let minute = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.up) * 60)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var parameters = QueryParameters()
        parameters.add("ImageId", imageID)
        parameters.add("DeprecateAt", formatter.string(from: minute))
        _ = try query(.ec2, "EnableImageDeprecation", parameters, mutation: .idempotent)
    }

    /// ModifySnapshotAttribute: lets these accounts create volumes from the
    /// snapshot (`Attribute=createVolumePermission`, `OperationType=add`,
    /// `UserId.N`; EC2 API reference).
    public func addCreateVolumePermission(snapshotID: String, accountIDs: [String]) throws {
        var parameters = QueryParameters()
        parameters.add("SnapshotId", snapshotID)
        parameters.add("Attribute", "createVolumePermission")
        parameters.add("OperationType", "add")
        parameters.addList("UserId", accountIDs)
        _ = try query(.ec2, "ModifySnapshotAttribute", parameters, mutation: .idempotent)
    }

    // MARK: tags

    /// CreateTags: sets these tags (replacing values of existing keys) on every resource.
    public func createTags(resources: [String], tags: [String: String]) throws {
        var parameters = QueryParameters()
        parameters.addList("ResourceId", resources)
        parameters.addKeyValues("Tag", tags.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })
        _ = try query(.ec2, "CreateTags", parameters, mutation: .idempotent)
    }

    /// DeleteTags: removes these keys, whatever their values.
    public func deleteTags(resources: [String], keys: [String]) throws {
        var parameters = QueryParameters()
        parameters.addList("ResourceId", resources)
        for (index, key) in keys.enumerated() { parameters.add("Tag.\(index + 1).Key", key) }
        _ = try query(.ec2, "DeleteTags", parameters, mutation: .idempotent)
    }

    // MARK: snapshots

    /// DescribeSnapshots, every page (`pageSize` only without `snapshotIDs`).
    public func describeSnapshots(
        snapshotIDs: [String] = [], owners: [String] = [], filters: [EC2Filter] = [], pageSize: Int? = nil
    ) throws -> [EBSSnapshot] {
        var parameters = QueryParameters()
        parameters.addList("SnapshotId", snapshotIDs)
        parameters.addList("Owner", owners)
        parameters.addFilters(filters)
        if snapshotIDs.isEmpty { parameters.add("MaxResults", pageSize) }
        let answer = AnswerDecoder(.ec2, "DescribeSnapshots")
        return try queryPages(.ec2, "DescribeSnapshots", parameters) { page in
            try answer.items(page, "snapshotSet").map { item in
                EBSSnapshot(
                    id: try answer.required(item, "snapshotId"), volumeID: item.string("volumeId"),
                    state: SnapshotState(rawValue: try answer.required(item, "status")),
                    startTime: item.string("startTime"),
                    description: item.string("description"), ownerID: item.string("ownerId"),
                    tags: answer.ec2Tags(item))
            }
        }
    }

    public func deleteSnapshot(_ snapshotID: String) throws {
        _ = try query(.ec2, "DeleteSnapshot", ["SnapshotId": snapshotID], mutation: .idempotent)
    }

    // MARK: instances

    /// DescribeInstances, every page, reservations flattened. `pageSize`
    /// (MaxResults) is sent only without `instanceIDs`: EC2 refuses both.
    public func describeInstances(
        instanceIDs: [String] = [], filters: [EC2Filter] = [], pageSize: Int? = nil
    ) throws -> [EC2Instance] {
        var parameters = QueryParameters()
        parameters.addList("InstanceId", instanceIDs)
        parameters.addFilters(filters)
        if instanceIDs.isEmpty { parameters.add("MaxResults", pageSize) }
        let answer = AnswerDecoder(.ec2, "DescribeInstances")
        return try queryPages(.ec2, "DescribeInstances", parameters) { page in
            try answer.items(page, "reservationSet").flatMap { reservation in
                try answer.items(reservation, "instancesSet").map { item in
                    EC2Instance(
                        id: try answer.required(item, "instanceId"), imageID: try answer.required(item, "imageId"),
                        state: InstanceState(rawValue: try answer.required(item, "instanceState", "name")),
                        privateIPAddress: item.string("privateIpAddress").flatMap { $0.isEmpty ? nil : $0 },
                        privateDNSName: item.string("privateDnsName").flatMap { $0.isEmpty ? nil : $0 },
                        publicIPAddress: item.string("ipAddress").flatMap { $0.isEmpty ? nil : $0 },
                        subnetID: item.string("subnetId"),
                        availabilityZone: item.path("placement", "availabilityZone")?.text,
                        instanceType: item.string("instanceType"), launchTime: item.string("launchTime"),
                        tags: answer.ec2Tags(item))
                }
            }
        }
    }

    /// TerminateInstances (terminating a terminated instance changes nothing).
    public func terminateInstances(_ instanceIDs: [String]) throws -> [InstanceStateChange] {
        var parameters = QueryParameters()
        parameters.addList("InstanceId", instanceIDs)
        let root = try query(.ec2, "TerminateInstances", parameters, mutation: .idempotent)
        let answer = AnswerDecoder(.ec2, "TerminateInstances")
        return try answer.items(root, "instancesSet").map { item in
            InstanceStateChange(
                instanceID: try answer.required(item, "instanceId"),
                previousState: try answer.required(item, "previousState", "name"),
                currentState: try answer.required(item, "currentState", "name"))
        }
    }

    // MARK: launch templates

    /// DescribeLaunchTemplates by ids and/or names (neither: all), every page.
    public func describeLaunchTemplates(ids: [String] = [], names: [String] = []) throws -> [LaunchTemplate] {
        var parameters = QueryParameters()
        parameters.addList("LaunchTemplateId", ids)
        parameters.addList("LaunchTemplateName", names)
        let answer = AnswerDecoder(.ec2, "DescribeLaunchTemplates")
        return try queryPages(.ec2, "DescribeLaunchTemplates", parameters) { page in
            try answer.items(page, "launchTemplates").map { try answer.launchTemplate($0) }
        }
    }

    /// DescribeLaunchTemplateVersions of one template, every page.
    /// `versions` holds numbers, `$Latest` or `$Default`; empty means all.
    public func describeLaunchTemplateVersions(
        _ template: LaunchTemplateReference, versions: [String] = []
    ) throws -> [LaunchTemplateVersion] {
        var parameters = QueryParameters()
        template.add(to: &parameters)
        parameters.addList("LaunchTemplateVersion", versions)
        let answer = AnswerDecoder(.ec2, "DescribeLaunchTemplateVersions")
        return try queryPages(.ec2, "DescribeLaunchTemplateVersions", parameters) { page in
            try answer.items(page, "launchTemplateVersionSet").map { try answer.launchTemplateVersion($0) }
        }
    }

    /// CreateLaunchTemplateVersion from `sourceVersion`, replacing the image,
    /// the user data (sent base64) and the instance tags. AWS copies the
    /// source's data and overrides what is given; a list given (the tag
    /// specifications) replaces the source's list whole, so `instanceTags`
    /// must be every tag instances should get. The `ClientToken` (made here
    /// when none is given) makes retries create one version, not several.
    public func createLaunchTemplateVersion(
        _ template: LaunchTemplateReference, sourceVersion: String, imageID: String? = nil,
        userData: [UInt8]? = nil, instanceTags: [String: String]? = nil, versionDescription: String? = nil,
        clientToken: String? = nil
    ) throws -> LaunchTemplateVersion {
        var parameters = QueryParameters()
        template.add(to: &parameters)
        parameters.add("SourceVersion", sourceVersion)
        parameters.add("VersionDescription", versionDescription)
        parameters.add("ClientToken", clientToken ?? UUID().uuidString)
        parameters.add("LaunchTemplateData.ImageId", imageID)
        parameters.add("LaunchTemplateData.UserData", userData.map { Data($0).base64EncodedString() })
        if let instanceTags {
            parameters.add("LaunchTemplateData.TagSpecification.1.ResourceType", "instance")
            parameters.addKeyValues(
                "LaunchTemplateData.TagSpecification.1.Tag",
                instanceTags.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })
        }
        let root = try query(.ec2, "CreateLaunchTemplateVersion", parameters, mutation: .idempotent)
        let answer = AnswerDecoder(.ec2, "CreateLaunchTemplateVersion")
        guard let version = root["launchTemplateVersion"] else { throw answer.missing("launchTemplateVersion") }
        return try answer.launchTemplateVersion(version)
    }

    /// ModifyLaunchTemplate: makes `defaultVersion` the template's default.
    public func setDefaultLaunchTemplateVersion(
        _ template: LaunchTemplateReference, defaultVersion: String
    ) throws -> LaunchTemplate {
        var parameters = QueryParameters()
        template.add(to: &parameters)
        parameters.add("SetDefaultVersion", defaultVersion)
        let root = try query(.ec2, "ModifyLaunchTemplate", parameters, mutation: .idempotent)
        let answer = AnswerDecoder(.ec2, "ModifyLaunchTemplate")
        guard let launchTemplate = root["launchTemplate"] else { throw answer.missing("launchTemplate") }
        return try answer.launchTemplate(launchTemplate)
    }
}

// MARK: decoding EC2's shapes

extension AnswerDecoder {
    /// EC2 `tagSet` (`<item><key>…</key><value>…</value></item>`).
    func ec2Tags(_ element: XMLElement, list: String = "tagSet") -> [String: String] {
        var tags: [String: String] = [:]
        for item in children(element, list, member: "item") {
            if let key = item.string("key") { tags[key] = item.string("value") ?? "" }
        }
        return tags
    }

    func image(_ item: XMLElement) throws -> MachineImage {
        MachineImage(
            id: try required(item, "imageId"), name: item.string("name"),
            state: ImageState(rawValue: try required(item, "imageState")),
            creationDate: item.string("creationDate"), ownerID: item.string("imageOwnerId"), tags: ec2Tags(item),
            blockDeviceMappings: children(item, "blockDeviceMapping", member: "item").map {
                ImageBlockDevice(
                    deviceName: $0.string("deviceName"),
                    snapshotID: $0.path("ebs", "snapshotId")?.text.nonEmpty)
            })
    }

    func launchTemplate(_ item: XMLElement) throws -> LaunchTemplate {
        LaunchTemplate(
            id: try required(item, "launchTemplateId"), name: try required(item, "launchTemplateName"),
            defaultVersion: try requiredInt(item, "defaultVersionNumber"),
            latestVersion: try requiredInt(item, "latestVersionNumber"), tags: ec2Tags(item))
    }

    func launchTemplateVersion(_ item: XMLElement) throws -> LaunchTemplateVersion {
        let data = item["launchTemplateData"]
        var specifications: [String: [String: String]] = [:]
        for specification in data.map({ children($0, "tagSpecificationSet", member: "item") }) ?? [] {
            guard let type = specification.string("resourceType") else { continue }
            specifications[type, default: [:]].merge(ec2Tags(specification)) { $1 }
        }
        return LaunchTemplateVersion(
            templateID: try required(item, "launchTemplateId"), templateName: try required(item, "launchTemplateName"),
            versionNumber: try requiredInt(item, "versionNumber"), isDefault: bool(item, "defaultVersion"),
            imageID: data?.string("imageId")?.nonEmpty, instanceType: data?.string("instanceType")?.nonEmpty,
            userData: data?.string("userData")?.nonEmpty, tagSpecifications: specifications)
    }
}

fileprivate extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
