import Foundation
import KilnCore

/// image.json: the AMI a bake made or reused, and what is on it. Written by
/// kiln-bake; read by kiln-userdata and kiln-rotate.
public struct ImageResult: ArtifactPayload, Equatable {
    public static let schemaName = "image"
    public static let schemaVersion = 1

    public var application: String
    /// The application's version (`version` is the envelope's).
    public var applicationVersion: String
    public var commit: String
    /// `app` (every merge) or `base` (the scheduled base image).
    public var role: String
    public var name: String
    /// The region the bake ran in, and its AMI.
    public var region: String
    public var amiID: String
    /// Every region's AMI, the bake's own included.
    public var amis: [String: String]
    public var sourceAMI: String
    public var bakeKey: String
    /// `baked`, or `reused` (an available AMI with the same bake key existed).
    public var outcome: String
    public var packerSeconds: Double?
    public var pipelineID: String?

    public init(
        application: String, applicationVersion: String, commit: String, role: String, name: String, region: String,
        amiID: String, amis: [String: String], sourceAMI: String, bakeKey: String, outcome: String,
        packerSeconds: Double?, pipelineID: String?
    ) {
        self.application = application
        self.applicationVersion = applicationVersion
        self.commit = commit
        self.role = role
        self.name = name
        self.region = region
        self.amiID = amiID
        self.amis = amis
        self.sourceAMI = sourceAMI
        self.bakeKey = bakeKey
        self.outcome = outcome
        self.packerSeconds = packerSeconds
        self.pipelineID = pipelineID
    }
}
