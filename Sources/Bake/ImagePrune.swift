import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// What prune did (or, with --dry-run, would do) to one image.
public struct PruneDecision: Sendable, Equatable {
    public var region: String
    public var imageID: String
    public var name: String
    /// `keep (newest 3)`, `keep (launch template lt-1 version 2)`, `deregister`.
    public var action: String
    public var deregister: Bool
}

/// `kiln-bake prune`: keeps the newest N images per application and role,
/// and never deregisters one that a launch template version, an instance or
/// a channel still uses; deletes the snapshots of what it deregisters.
public struct ImagePrune {
    public let context: StageContext
    public let aws: AWSEnvironment
    public let flags: BakeFlags
    public let keep: Int?
    public let dryRun: Bool
    public let executablePath: String?

    public init(
        context: StageContext, aws: AWSEnvironment, flags: BakeFlags, keep: Int?, dryRun: Bool, executablePath: String?
    ) {
        self.context = context
        self.aws = aws
        self.flags = flags
        self.keep = keep
        self.dryRun = dryRun
        self.executablePath = executablePath
    }

    @discardableResult
    public func run() throws -> [PruneDecision] {
        let log = context.log
        let configuration = try BakeConfiguration.load(
            context.settings, flags: flags, projectDirectory: context.projectDirectory, executablePath: executablePath)
        guard !configuration.application.isEmpty else {
            throw KilnError.badConfiguration("no application name: set application in kiln.yml (or CI_PROJECT_NAME)")
        }
        let keep = self.keep ?? configuration.keep
        guard keep >= 1 else { throw KilnError.usage("--keep: keep at least 1 image") }
        let home = aws.client()
        var decisions: [PruneDecision] = []
        for region in [home.region] + Array(Set(configuration.regions.map(\.name)).subtracting([home.region])).sorted()
        {
            let client = region == home.region ? home : aws.client(region: region)
            decisions += try prune(client: client, application: configuration.application, keep: keep)
        }
        for decision in decisions {
            log.line(
                """
                \(dryRun && decision.deregister ? "would deregister" : decision.action): \
                \(decision.imageID) \(decision.name) (\(decision.region))
                """
            )
        }
        return decisions
    }

    func prune(client: AWSClient, application: String, keep: Int) throws -> [PruneDecision] {
        let catalog = ImageCatalog(client: client)
        let images = try client.describeImages(
            owners: ["self"], filters: [("tag:\(KilnTag.application)", [application])])
        let references = try self.references(client: client, application: application)
        var decisions: [PruneDecision] = []
        let byRole = Dictionary(grouping: images) { $0.tags[KilnTag.role] ?? "" }
        for role in byRole.keys.sorted() {
            for (index, image) in ImageCatalog.newestFirst(byRole[role] ?? []).enumerated() {
                var decision = PruneDecision(
                    region: client.region, imageID: image.id, name: image.name ?? "", action: "deregister",
                    deregister: true)
                if index < keep {
                    decision.action = "keep (newest \(keep) of \(role))"
                    decision.deregister = false
                } else if let why = references[image.id] {
                    decision.action = "keep (\(why))"
                    decision.deregister = false
                }
                if decision.deregister && !dryRun {
                    try catalog.deregister(image, log: context.log)
                    decision.action = "deregistered with \(image.snapshotIDs.count) snapshot(s)"
                }
                decisions.append(decision)
            }
        }
        return decisions
    }

    /// Image id -> what still uses it.
    func references(client: AWSClient, application: String) throws -> [String: String] {
        var uses: [String: String] = [:]
        for template in try client.describeLaunchTemplates() {
            for version in try client.describeLaunchTemplateVersions(.id(template.id)) {
                if let image = version.imageID, uses[image] == nil {
                    uses[image] = "launch template \(template.name) version \(version.versionNumber)"
                }
            }
        }
        let live = ["pending", "running", "stopping", "stopped", "shutting-down"]
        for instance in try client.describeInstances(filters: [("instance-state-name", live)])
        where uses[instance.imageID] == nil {
            uses[instance.imageID] = "instance \(instance.id) is \(instance.state)"
        }
        // Channels: every parameter under /kiln/<app>/ (GetParametersByPath, every page).
        var token: String?
        repeat {
            var body: [String: any Sendable] = ["Path": "/kiln/\(application)/", "Recursive": true, "MaxResults": 10]
            if let token { body["NextToken"] = token }
            let answer = try client.json(.ssm, target: "AmazonSSM.GetParametersByPath", body)
            for parameter in answer["Parameters"] as? [[String: Any]] ?? [] {
                if let value = parameter["Value"] as? String, let name = parameter["Name"] as? String,
                    uses[value] == nil
                {
                    uses[value] = "channel \(name)"
                }
            }
            token = (answer["NextToken"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        } while token != nil
        return uses
    }
}
