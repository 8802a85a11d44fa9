import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// This account's images in one region, as Kiln looks at them.
public struct ImageCatalog: Sendable {
    public let client: AWSClient

    public init(client: AWSClient) { self.client = client }

    /// Newest first: by Kiln's `kiln:built-at`, then EC2's creation date,
    /// then the name (Ubuntu's names end in the release's date serial).
    public static func newestFirst(_ images: [MachineImage]) -> [MachineImage] {
        images.sorted { a, b in
            let left = (a.tags[KilnTag.builtAt] ?? "", a.creationDate ?? "", a.name ?? "")
            let right = (b.tags[KilnTag.builtAt] ?? "", b.creationDate ?? "", b.name ?? "")
            return left > right
        }
    }

    public func newest(withBakeKey key: String) throws -> MachineImage? {
        Self.newestFirst(
            try client.describeImages(
                owners: ["self"], filters: [("tag:\(KilnTag.bakeKey)", [key]), ("state", ["available"])])
        ).first
    }

    public func tags(of imageID: String) throws -> [String: String] {
        guard let image = try client.describeImages(imageIDs: [imageID]).first else {
            throw KilnError(.serviceUnavailable, "\(client.region): image \(imageID) is gone")
        }
        return image.tags
    }

    /// Tags the image and every snapshot behind it.
    public func tag(imageID: String, tags: [String: String]) throws {
        let snapshots = try client.describeImages(imageIDs: [imageID]).first?.snapshotIDs ?? []
        try client.createTags(resources: [imageID] + snapshots, tags: tags)
    }

    /// Deregisters every image of this name and deletes its snapshots: what
    /// a failed or cancelled Packer run may have left. Best effort; it says
    /// what it could not do.
    public func removeLeftovers(named name: String, log: LogWriter) {
        do {
            for image in try client.describeImages(owners: ["self"], filters: [("name", [name])]) {
                try deregister(image, log: log)
                log.line("cleanup: deregistered \(image.id) (\(name)) left by the failed build")
            }
            // Packer deregisters an image it gives up on, but may leave its
            // snapshots; the template tags them with the image's name.
            for snapshot in try client.describeSnapshots(owners: ["self"], filters: [("tag:Name", [name])]) {
                try client.deleteSnapshot(snapshot.id)
                log.line("cleanup: deleted snapshot \(snapshot.id) of \(name) left by the failed build")
            }
        } catch {
            log.warning(
                "cleanup: could not check for images named \(name) in \(client.region): \(error); look for it by hand")
        }
    }

    public func deregister(_ image: MachineImage, log: LogWriter) throws {
        try client.deregisterImage(image.id)
        for snapshot in image.snapshotIDs {
            try client.deleteSnapshot(snapshot)
        }
    }
}

/// Where the bake starts from, and why that image.
public struct SourceImage: Sendable, Equatable {
    public var id: String
    public var reason: String

    public static func resolve(_ configuration: BakeConfiguration, images: ImageCatalog) throws -> SourceImage {
        let client = images.client
        if let pinned = configuration.pinnedSourceAMI {
            let where_ = configuration.pinnedSourceLocation ?? "kiln.yml"
            let found: [MachineImage]
            do {
                found = try client.describeImages(imageIDs: [pinned])
            } catch let error as AWSError where error.code.hasPrefix("InvalidAMIID") {
                throw KilnError.badConfiguration(
                    "source AMI \(pinned) (\(where_)) does not exist in \(client.region): \(error.message)")
            }
            guard let image = found.first else {
                throw KilnError.badConfiguration("source AMI \(pinned) (\(where_)) does not exist in \(client.region)")
            }
            guard image.state == .available else {
                throw KilnError.badConfiguration("source AMI \(pinned) (\(where_)) is \(image.state), not available")
            }
            return SourceImage(id: image.id, reason: "pinned by \(where_)")
        }
        switch configuration.role {
        case .base:
            let candidates = try client.describeImages(
                owners: [configuration.baseOwner],
                filters: [("name", [configuration.baseNamePattern]), ("state", ["available"])])
            guard let newest = newestRelease(candidates.filter { isLTS($0.name ?? "") }).first else {
                throw KilnError(
                    .serviceUnavailable,
                    """
                    no available Ubuntu LTS image of owner \(configuration.baseOwner) \
                    named \(configuration.baseNamePattern) in \(client.region) (bake.base.owner, bake.base.name)
                    """
                )
            }
            return SourceImage(
                id: newest.id,
                reason: "newest of \(candidates.count) named \(configuration.baseNamePattern): \(newest.name ?? "")")
        case .app:
            let bases = try client.describeImages(
                owners: ["self"], filters: [("tag:\(KilnTag.role)", ["base"]), ("state", ["available"])])
            guard let newest = ImageCatalog.newestFirst(bases).first else {
                throw KilnError.badConfiguration(
                    """
                    no base image in \(client.region): \
                    bake one with 'kiln-bake --role base' (the scheduled pipeline), or pin bake.source_ami in kiln.yml
                    """
                )
            }
            return SourceImage(id: newest.id, reason: "newest Kiln base image: \(newest.name ?? "")")
        }
    }

    /// The release in an Ubuntu image name (`ubuntu-jammy-22.04-amd64-server-…` -> 22.04).
    public static func release(_ name: String) -> (year: Int, month: Int)? {
        let parts = name.split(whereSeparator: { $0 == "-" || $0 == "/" })
        guard
            let word = parts.first(where: {
                $0.count == 5 && $0.dropFirst(2).first == "." && $0.filter(\.isNumber).count == 4
            }),
            let year = Int(word.prefix(2)), let month = Int(word.suffix(2))
        else { return nil }
        return (year, month)
    }

    /// Ubuntu's LTS releases are the even years' April ones (`22.04`); a name
    /// without a release number is let through.
    public static func isLTS(_ name: String) -> Bool {
        guard let release = release(name) else { return true }
        return release.month == 4 && release.year % 2 == 0
    }

    /// Newest release first (24.04 before a later-published 22.04 rebuild),
    /// then the newest image of that release.
    public static func newestRelease(_ images: [MachineImage]) -> [MachineImage] {
        let byDate = ImageCatalog.newestFirst(images)
        return byDate.enumerated().sorted { a, b in
            let left = release(a.element.name ?? "").map { $0.year * 100 + $0.month } ?? 0
            let right = release(b.element.name ?? "").map { $0.year * 100 + $0.month } ?? 0
            return left != right ? left > right : a.offset < b.offset
        }.map(\.element)
    }
}

/// The image in the other regions (copied, with the same tags: tags do not
/// travel with a copy) and shared with the other accounts.
public struct ImageDistribution: Sendable {
    public let log: LogWriter
    public let images: ImageCatalog
    /// Clients for the other regions, on the same credential chain.
    public let aws: AWSEnvironment
    public let clock: Clock
    /// How long to wait for a copy before giving up (75: retry the job; the
    /// re-run finds the copy by its bake key).
    public var copyTimeout: TimeInterval = 3600
    /// How often to look at a copy under way (AWS takes minutes).
    public var copyPoll: TimeInterval = 15

    public init(log: LogWriter, images: ImageCatalog, aws: AWSEnvironment, clock: Clock) {
        self.log = log
        self.images = images
        self.aws = aws
        self.clock = clock
    }

    /// Copies the image to each of `copies`' regions and shares it, there
    /// and at home, with `accounts`: the AMIs by region.
    public func distribute(
        imageID: String, name: String, tags: [String: String], copies: [ImageCopy], accounts: [String]
    ) throws -> [String: String] {
        let home = images.client.region
        var amis = [home: imageID]
        var seen: Set<String> = [home]
        let others = copies.filter { seen.insert($0.region).inserted }.sorted { $0.region < $1.region }
        if !others.isEmpty {
            let key = tags[KilnTag.bakeKey] ?? ""
            // Concurrently: a copy takes minutes in AWS.
            let results = Parallel.map(others) { copy in
                try self.copy(
                    imageID: imageID, name: name, key: key, tags: tags, as: copy,
                    to: ImageCatalog(client: aws.client(region: copy.region)))
            }
            for (copy, result) in zip(others, results) {
                amis[copy.region] = try result.get()
            }
        }
        if !accounts.isEmpty {
            for (region, ami) in amis.sorted(by: { $0.key < $1.key }) {
                let client = region == home ? images.client : aws.client(region: region)
                try share(ami, in: client, with: accounts)
            }
        }
        return amis
    }

    /// The launch permission, and the snapshots' createVolumePermission:
    /// without it the other account cannot create the volumes an instance
    /// of the image boots from, when the snapshot is encrypted or when it
    /// copies the image (EC2 User Guide, "Share an AMI with specific AWS
    /// accounts": "you must also share any customer managed keys used to
    /// encrypt snapshots"; "Share an Amazon EBS snapshot"). The KMS key's
    /// grant for that account is the key policy's, outside Kiln.
    func share(_ ami: String, in client: AWSClient, with accounts: [String]) throws {
        try client.addLaunchPermission(imageID: ami, accountIDs: accounts)
        let snapshots = try client.describeImages(imageIDs: [ami]).first?.snapshotIDs ?? []
        for snapshot in snapshots {
            try client.addCreateVolumePermission(snapshotID: snapshot, accountIDs: accounts)
        }
        let listed = snapshots.isEmpty ? "" : " (and its snapshots \(snapshots.joined(separator: ", ")))"
        log.line("shared \(ami)\(listed) in \(client.region) with \(accounts.joined(separator: ", "))")
    }

    func copy(
        imageID: String, name: String, key: String, tags: [String: String], as request: ImageCopy,
        to target: ImageCatalog
    ) throws -> String {
        let region = target.client.region
        if let existing = Self.existing(key: key, in: target) {
            log.line("copy: \(region) already has \(existing) with this bake key")
            try target.tag(imageID: existing, tags: tags)
            return existing
        }
        // The bake key as client token: a retried or re-run copy lands once.
        let copied = try target.client.copyImage(
            sourceImageID: imageID, sourceRegion: images.client.region, name: name,
            description: "kiln-bake copy of \(imageID)", clientToken: String(key.prefix(64)),
            encrypted: request.encrypted, kmsKeyID: request.kmsKey)
        // The image can be tagged at once (so a re-run finds it); its snapshots exist when it is available.
        try target.client.createTags(resources: [copied], tags: tags)
        let deadline = clock.now().addingTimeInterval(copyTimeout)
        while true {
            guard let state = try target.client.describeImages(imageIDs: [copied]).first?.state else {
                throw KilnError(.serviceUnavailable, "copy of \(imageID) to \(region) (\(copied)) is missing")
            }
            if state == .available { break }
            if state.isFinalFailure {
                throw KilnError(.serviceUnavailable, "copy of \(imageID) to \(region) (\(copied)) ended \(state)")
            }
            guard clock.now() < deadline else {
                throw KilnError(
                    .temporaryFailure,
                    """
                    copy of \(imageID) to \(region) (\(copied)) still \(state) \
                    after \(LogWriter.formatDuration(copyTimeout)); re-run the job to go on
                    """
                )
            }
            clock.sleep(copyPoll)
        }
        try target.tag(imageID: copied, tags: tags)
        let encryption = request.encrypted ? ", encrypted with \(request.kmsKey ?? "the default EBS key")" : ""
        log.line("copy: \(imageID) -> \(copied) in \(region)\(encryption), tagged")
        return copied
    }

    static func existing(key: String, in catalog: ImageCatalog) -> String? {
        guard !key.isEmpty else { return nil }
        let images =
            (try? catalog.client.describeImages(owners: ["self"], filters: [("tag:\(KilnTag.bakeKey)", [key])])) ?? []
        return ImageCatalog.newestFirst(images.filter { $0.state == .available || $0.state == .pending }).first?.id
    }
}

/// One copy of the image: its region, and how its snapshots are encrypted.
public struct ImageCopy: Sendable, Equatable {
    public var region: String
    /// CopyImage's `Encrypted`: set for an encrypted bake and wherever a key is given.
    public var encrypted: Bool
    /// CopyImage's `KmsKeyId` (a key of that region); nil: the region's default EBS key.
    public var kmsKey: String?

    public init(region: String, encrypted: Bool, kmsKey: String?) {
        self.region = region
        self.encrypted = encrypted
        self.kmsKey = kmsKey
    }
}
