import Foundation
import KilnArtifacts
import KilnCore

/// Packer's `-machine-readable` output: one record a line,
/// `timestamp,target,type,data...`. Commas inside data are written as
/// `%!(PACKER_COMMA)`, new lines as `\n` (two characters), carriage returns as
/// `\r` (Packer's "Machine-Readable Output" in its Commands overview,
/// developer.hashicorp.com/packer/docs/commands: "Format for Machine-Readable
/// Output").
public struct PackerRecord: Sendable, Equatable {
    public var timestamp: String
    public var target: String
    public var type: String
    public var data: [String]

    /// Parses one line; nil for a line that is not a record (Packer prints
    /// a few plain lines, and a crash prints a stack trace).
    public init?(line: some StringProtocol) {
        let fields = String(line).split(separator: Character(","), omittingEmptySubsequences: false).map { String($0) }
        guard fields.count >= 3, !fields[0].isEmpty, fields[0].allSatisfy({ $0.isNumber }) else { return nil }
        timestamp = fields[0]
        target = fields[1]
        type = fields[2]
        data = fields.dropFirst(3).map(Self.unescape)
    }

    /// The line as Packer shows it to a person, for the log: a `ui` record
    /// (`ui,say|message|error,<text>`: "the output ... that would've normally
    /// gone to the console if Packer were running in human-readable mode",
    /// the same page) is its text, unescaped, in full; provisioner output,
    /// Ansible's too, is such a `ui,message` record whose text Packer has
    /// already prefixed with the build's name. Every other record (artifacts,
    /// error counts, the build's own error record, which repeats a `ui,error`)
    /// is for parsing only: nil. A line that is no record (a plugin's plain
    /// output, a crash) is shown as it is.
    public static func humanText(_ line: Substring) -> String? {
        guard let record = PackerRecord(line: line) else { return String(line) }
        guard record.type == "ui", record.data.count >= 2, ["say", "message", "error"].contains(record.data[0])
        else { return nil }
        return record.data.dropFirst().joined(separator: ",")
    }

    public static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "%!(PACKER_COMMA)", with: ",")
            .replacingOccurrences(of: "\\n", with: "\n")
            .replacingOccurrences(of: "\\r", with: "\r")
    }
}

/// The amazon builders, by the builder id their artifacts carry (each
/// builder's `BuilderId` constant in hashicorp/packer-plugin-amazon, the same
/// as in Packer 1.6.6's built-in builders).
public enum AmazonBuilder: String, Sendable, CaseIterable {
    case ebs = "mitchellh.amazonebs"
    case ebsSurrogate = "mitchellh.amazon.ebssurrogate"
    case chroot = "mitchellh.amazon.chroot"
    case instance = "mitchellh.amazon.instance"
    case ebsVolume = "mitchellh.amazon.ebsvolume"

    /// The source type a template names it by.
    public var sourceType: String {
        switch self {
        case .ebs: "amazon-ebs"
        case .ebsSurrogate: "amazon-ebssurrogate"
        case .chroot: "amazon-chroot"
        case .instance: "amazon-instance"
        case .ebsVolume: "amazon-ebsvolume"
        }
    }

    /// amazon-ebsvolume makes EBS volumes (and their snapshots), no AMI.
    public var makesImage: Bool { self != .ebsVolume }
}

/// One artifact Packer reported (`artifact,<index>,builder-id|id|string|...`).
public struct PackerArtifact: Sendable, Equatable {
    public var target: String
    public var index: Int
    public var builderID: String?
    public var id: String?
    public var string: String?

    public var builder: AmazonBuilder? { builderID.flatMap(AmazonBuilder.init(rawValue:)) }

    /// The `region:id` pairs of an amazon builder's id: `us-east-1:ami-1,eu-west-1:ami-2`
    /// (builder/common/artifact.go `Id()`: sorted, joined with commas, which the
    /// machine-readable form escapes), or `region:vol-...` and `region:snap-...`
    /// (amazon-ebsvolume).
    public var resourcesByRegion: [(region: String, id: String)] {
        (id ?? "").split(separator: ",").compactMap { part in
            let pair = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return pair.count == 2 && !pair[0].isEmpty && !pair[1].isEmpty ? (pair[0], pair[1]) : nil
        }
    }

    /// The AMIs of a builder that makes them, by region.
    public var amisByRegion: [String: String] {
        guard builder?.makesImage == true else { return [:] }
        var result: [String: String] = [:]
        for (region, id) in resourcesByRegion where id.hasPrefix("ami-") { result[region] = id }
        return result
    }

    /// `amazon-ebs.kiln (amazon-ebs)`, or the builder id of another builder.
    var described: String { "\(target) (\(builder?.sourceType ?? builderID ?? "no builder id"))" }
}

/// What a whole `packer build -machine-readable` run said that Kiln acts on.
public struct PackerOutput: Sendable, Equatable {
    public var artifacts: [PackerArtifact] = []
    /// `<target>,error,<message>` records: each failed build's own message.
    public var buildErrors: [(target: String, message: String)] = []
    /// `ui,error` lines, for when there is no build error record.
    public var uiErrors: [String] = []
    public var errorCount: Int?

    public init() {}

    public init(text: String) {
        self.init()
        for line in text.split(whereSeparator: \.isNewline) { add(line) }
    }

    public mutating func add(_ line: some StringProtocol) {
        guard let record = PackerRecord(line: line) else { return }
        switch record.type {
        case "artifact":
            guard record.data.count >= 2, let index = Int(record.data[0]) else { return }
            let value = record.data.count >= 3 ? record.data[2...].joined(separator: ",") : ""
            var artifact =
                artifacts.first { $0.target == record.target && $0.index == index }
                ?? PackerArtifact(target: record.target, index: index)
            switch record.data[1] {
            case "builder-id": artifact.builderID = value
            case "id": artifact.id = value
            case "string": artifact.string = value
            default: break
            }
            if let at = artifacts.firstIndex(where: { $0.target == record.target && $0.index == index }) {
                artifacts[at] = artifact
            } else {
                artifacts.append(artifact)
            }
        case "error":
            buildErrors.append((record.target, record.data.joined(separator: ",")))
        case "error-count":
            errorCount = record.data.first.flatMap { Int($0) }
        case "ui":
            if record.data.first == "error" {
                uiErrors.append(record.data.dropFirst().joined(separator: ","))
            }
        default:
            break
        }
    }

    /// The artifacts that are AMIs: chosen by builder id, never by position
    /// (a post-processor such as `manifest` adds artifacts of its own, and
    /// Packer reports empty ones).
    public var imageArtifacts: [PackerArtifact] { artifacts.filter { !$0.amisByRegion.isEmpty } }

    public var imageArtifact: PackerArtifact? { imageArtifacts.first }

    /// The one AMI a successful build made in `region`; a template that makes
    /// no AMI, none in the bake region, or more than one is a configuration
    /// error (78), said in those words.
    public func image(in region: String) throws -> String {
        let images = imageArtifacts
        guard let image = images.first else {
            let made = artifacts.filter { $0.builderID?.isEmpty == false }
            guard !made.isEmpty else {
                throw KilnError.badConfiguration(
                    "the template makes no AMI: Packer reported no artifact (does its build block name a source?)")
            }
            let listed = made.map { artifact in
                let ids = artifact.resourcesByRegion.map { "\($0.region):\($0.id)" }
                return artifact.described + (ids.isEmpty ? "" : ": \(ids.joined(separator: ", "))")
            }
            throw KilnError.badConfiguration(
                """
                the template makes no AMI: Packer's artifacts are \(listed.joined(separator: "; ")); \
                kiln-bake bakes from amazon-ebs, amazon-ebssurrogate, amazon-chroot or amazon-instance
                """
            )
        }
        guard images.count == 1 else {
            throw KilnError.badConfiguration(
                """
                the template makes \(images.count) AMIs (\(images.map(\.target).joined(separator: ", "))); \
                kiln-bake bakes one image: build one source, or choose one with the template's build block
                """
            )
        }
        guard let ami = image.amisByRegion[region] else {
            throw KilnError.badConfiguration(
                """
                \(image.described) made its AMI in \(image.amisByRegion.keys.sorted().joined(separator: ", ")), \
                not in \(region), the bake region: the template's region should be var.region
                """
            )
        }
        return ami
    }

    /// Packer's own words for why the build failed.
    public var failureMessage: String? {
        if !buildErrors.isEmpty {
            return buildErrors.map { "\($0.target): \($0.message.trimmingCharacters(in: .whitespacesAndNewlines))" }
                .joined(separator: "\n")
        }
        let messages = uiErrors.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        return messages.isEmpty ? nil : messages.joined(separator: "\n")
    }

    public static func == (a: PackerOutput, b: PackerOutput) -> Bool {
        a.artifacts == b.artifacts && a.uiErrors == b.uiErrors && a.errorCount == b.errorCount
            && a.buildErrors.elementsEqual(b.buildErrors) { $0.target == $1.target && $0.message == $1.message }
    }
}

/// Which exit code a failed Packer run stands for, from AWS's error codes in
/// Packer's message: capacity and throttling are worth retrying (75),
/// refused credentials are 77, anything else is the remote refusing (69).
public enum PackerFailureKind {
    static let temporaryCodes = [
        "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientAddressCapacity",
        "InsufficientVolumeCapacity", "InsufficientCapacity", "InsufficientReservedInstanceCapacity",
        "RequestLimitExceeded", "ThrottlingException", "Throttling", "TooManyRequestsException",
        "RequestTimeout", "ServiceUnavailable", "ResourceNotReady: exceeded wait attempts",
    ]
    static let permissionCodes = [
        "UnauthorizedOperation", "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch",
        "AccessDenied", "NoCredentialProviders", "ExpiredToken",
    ]

    public static func exitStatus(for message: String) -> KilnExit {
        if temporaryCodes.contains(where: message.contains) { return .temporaryFailure }
        if permissionCodes.contains(where: message.contains) { return .permissionDenied }
        return .serviceUnavailable
    }
}
