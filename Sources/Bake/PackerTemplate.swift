import Foundation
import KilnCore

/// The project's Packer template: one file, or a folder whose files Packer
/// reads together (Packer's HCL2 templates: a folder's `*.pkr.hcl` and
/// `*.pkr.json`, and its `*.auto.pkrvars.hcl`; the other `*.pkrvars.hcl` are
/// counted too, since a team's wrapper may pass them).
public struct PackerTemplate: Sendable, Equatable {
    /// What Packer is given: the file or the folder.
    public let path: String
    public let isFolder: Bool
    /// Every file of the template Packer may read, sorted, as full paths.
    public let files: [String]

    static let suffixes = [".pkr.hcl", ".pkr.json", ".pkrvars.hcl", ".pkrvars.json"]

    /// The folder the template's relative paths start from (Packer's working directory).
    public var folder: String { isFolder ? path : (path as NSString).deletingLastPathComponent }

    /// Reads what `path` is; a folder without `*.pkr.hcl` or `*.pkr.json` is
    /// 78, naming where the path came from (`origin`).
    public init(path: String, origin: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KilnError.badConfiguration("Packer template \(origin) not found at \(path)")
        }
        self.path = path
        isFolder = isDirectory.boolValue
        guard isFolder else {
            files = [path]
            return
        }
        // Packer reads the folder's own files, not its subfolders'.
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        files = names.filter { name in Self.suffixes.contains { name.hasSuffix($0) } }.sorted()
            .map { (path as NSString).appendingPathComponent($0) }
        guard files.contains(where: { $0.hasSuffix(".pkr.hcl") || $0.hasSuffix(".pkr.json") }) else {
            throw KilnError.badConfiguration(
                "Packer template \(origin): the folder \(path) has no *.pkr.hcl or *.pkr.json file for Packer to build")
        }
    }
}
