import Foundation
import KilnArtifacts
import KilnCore

/// The bake key: a SHA-256 over everything that decides what is on the
/// image. Two bakes with the same key make the same image, so the second
/// one reuses the first's AMI instead of launching anything.
///
/// In it: the role, the application, the resolved source AMI id, the
/// artifact's SHA-256, the Packer template's bytes, every file of the
/// playbook tree (path and bytes), the project's Packer variables, the
/// instance type and the communicator. Not in it: the image name, the time,
/// the pipeline and the tags, which differ on every run without changing
/// what is installed.
public struct BakeKey: Sendable, Equatable {
    public let value: String
    /// The lines that were hashed, for the log.
    public let inputs: [String]

    public init(
        role: BakeRole, application: String, sourceAMI: String, artifactSHA256: String?, templatePath: String,
        playbooksPath: String, variables: [String: String], instanceType: String, communicator: String
    ) throws {
        var lines = [
            "kiln-bake-key 1",
            "role \(role.rawValue)",
            "application \(application)",
            "source-ami \(sourceAMI)",
            "artifact \(artifactSHA256 ?? "-")",
            "template \(try SHA256Digest.hex(ofFileAt: templatePath))",
            "playbooks \(try Self.treeDigest(playbooksPath))",
            "instance-type \(instanceType)",
            "communicator \(communicator)",
        ]
        // Lengths first, so that no value can pose as a key (`a=b` + `c` vs `a` + `b=c`).
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) {
            lines.append("variable \(key.utf8.count):\(key)=\(value.utf8.count):\(value)")
        }
        inputs = lines
        value = SHA256Digest.hex(of: Data(lines.joined(separator: "\n").utf8))
    }

    /// A digest of a folder: every regular file's relative path and SHA-256,
    /// in sorted order; symbolic links by their target. A missing folder
    /// counts as empty (a template that uses no playbooks).
    static func treeDigest(_ root: String) throws -> String {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isFolder) else {
            return SHA256Digest.hex(of: Data("none".utf8))
        }
        guard isFolder.boolValue else { return try SHA256Digest.hex(ofFileAt: root) }
        var entries: [String] = []
        guard let walker = manager.enumerator(atPath: root) else {
            throw KilnError.badConfiguration("\(root): cannot list the playbook folder")
        }
        for case let relative as String in walker {
            let full = (root as NSString).appendingPathComponent(relative)
            let attributes = try manager.attributesOfItem(atPath: full)
            switch attributes[.type] as? FileAttributeType {
            case .typeRegular?:
                entries.append("f \(relative) \(try SHA256Digest.hex(ofFileAt: full))")
            case .typeSymbolicLink?:
                entries.append("l \(relative) \(try manager.destinationOfSymbolicLink(atPath: full))")
            default:
                continue
            }
        }
        return SHA256Digest.hex(of: Data(entries.sorted().joined(separator: "\n").utf8))
    }
}
