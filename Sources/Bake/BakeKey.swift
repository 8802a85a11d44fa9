import Foundation
import KilnArtifacts
import KilnCore

/// The bake key: a SHA-256 over everything that decides what is on the
/// image. Two bakes with the same key make the same image, so the second
/// one reuses the first's AMI instead of launching anything.
///
/// In it: the role, the day (base role only: see `BakeDay`), the application, the resolved source AMI id, the
/// artifact's SHA-256, every file of the Packer template (a file, or a
/// folder's `PackerTemplate.files`), every file of the playbook tree (path
/// and bytes), the project's Packer variables, the instance type, the
/// communicator and, when the image is encrypted anywhere, each region's
/// encryption. Not in it: the image name, the time, the pipeline and the
/// tags, which differ on every run without changing what is installed.
public struct BakeKey: Sendable, Equatable {
    public let value: String
    /// The lines that were hashed, for the log.
    public let inputs: [String]
    /// The files the key covers (the template's, the playbooks', the
    /// artifact), relative to the project when inside it, for image.json.
    public let files: [String]

    public init(
        role: BakeRole, application: String, sourceAMI: String, artifactSHA256: String?, artifactPath: String? = nil,
        template: PackerTemplate, playbooksPath: String, variables: [String: String], instanceType: String,
        communicator: String, day: BakeDay? = nil, encryption: String? = nil, projectDirectory: String = "/"
    ) throws {
        let playbooks = try Self.tree(playbooksPath)
        var lines = [
            "kiln-bake-key 1",
            "role \(role.rawValue)",
            "application \(application)",
            "source-ami \(sourceAMI)",
            "artifact \(artifactSHA256 ?? "-")",
            // A one-file template keeps the line keys had before folders (no re-bake for the same inputs).
            template.isFolder
                ? "template-folder \(try Self.filesDigest(template.files, in: template.path))"
                : "template \(try SHA256Digest.hex(ofFileAt: template.path))",
            "playbooks \(playbooks.digest)",
            "instance-type \(instanceType)",
            "communicator \(communicator)",
        ]
        // The base image takes the day's updates (apt, snaps, security
        // fixes) whether or not Ubuntu published a new image: its key
        // changes every day, and a re-run on the same day reuses.
        if let day { lines.append("day \(day.text)") }
        // An encrypted image is another image (and so are its copies with
        // other keys); unencrypted bakes keep the keys they had before.
        if let encryption { lines.append("encryption \(encryption)") }
        // Lengths first, so that no value can pose as a key (`a=b` + `c` vs `a` + `b=c`).
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) {
            lines.append("variable \(key.utf8.count):\(key)=\(value.utf8.count):\(value)")
        }
        inputs = lines
        value = SHA256Digest.hex(of: Data(lines.joined(separator: "\n").utf8))
        let playbookFiles = playbooks.files.map {
            $0.isEmpty ? playbooksPath : (playbooksPath as NSString).appendingPathComponent($0)
        }
        files = (template.files + playbookFiles + (artifactPath.map { [$0] } ?? [])).map {
            Self.relative($0, to: projectDirectory)
        }
    }

    /// `path` relative to `folder` when it lies inside it, else as given.
    static func relative(_ path: String, to folder: String) -> String {
        for base in [folder, (folder as NSString).resolvingSymlinksInPath] where !base.isEmpty {
            let prefix = base.hasSuffix("/") ? base : base + "/"
            if path.hasPrefix(prefix) { return String(path.dropFirst(prefix.count)) }
        }
        return path
    }

    /// The digest of a template folder's files: each one's name in the folder and SHA-256.
    static func filesDigest(_ files: [String], in folder: String) throws -> String {
        let entries = try files.map { "f \(relative($0, to: folder)) \(try SHA256Digest.hex(ofFileAt: $0))" }
        return SHA256Digest.hex(of: Data(entries.sorted().joined(separator: "\n").utf8))
    }

    /// A digest of a folder: every regular file's relative path and SHA-256,
    /// in sorted order; symbolic links by their target. A missing folder
    /// counts as empty (a template that uses no playbooks). With the
    /// regular files' relative paths.
    static func tree(_ root: String) throws -> (digest: String, files: [String]) {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isFolder) else {
            return (SHA256Digest.hex(of: Data("none".utf8)), [])
        }
        guard isFolder.boolValue else { return (try SHA256Digest.hex(ofFileAt: root), [""]) }
        var entries: [String] = []
        var files: [String] = []
        guard let walker = manager.enumerator(atPath: root) else {
            throw KilnError.badConfiguration("\(root): cannot list the playbook folder")
        }
        for case let relative as String in walker {
            let full = (root as NSString).appendingPathComponent(relative)
            let attributes = try manager.attributesOfItem(atPath: full)
            switch attributes[.type] as? FileAttributeType {
            case .typeRegular?:
                entries.append("f \(relative) \(try SHA256Digest.hex(ofFileAt: full))")
                files.append(relative)
            case .typeSymbolicLink?:
                entries.append("l \(relative) \(try manager.destinationOfSymbolicLink(atPath: full))")
            default:
                continue
            }
        }
        return (SHA256Digest.hex(of: Data(entries.sorted().joined(separator: "\n").utf8)), files.sorted())
    }
}

/// The day a base bake is for, in UTC: the day the pipeline was created
/// (`CI_PIPELINE_CREATED_AT`, ISO 8601, one of GitLab's predefined
/// variables), so that a retried job and a re-run on the same day find the
/// same key; by hand, today.
public struct BakeDay: Sendable, Equatable {
    /// `2026-12-01`.
    public let text: String

    public init(pipelineCreatedAt: String?, now: Date) {
        let date = pipelineCreatedAt.flatMap { ISO8601DateFormatter().date(from: $0) } ?? now
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        text = String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// `20261201`, for the image's version and name.
    public var compact: String { text.replacingOccurrences(of: "-", with: "") }
}
