import Foundation
import KilnCore

/// What marks a folder as one kiln-checkout made, so that it may empty and
/// clean it later while a person's own folder or clone is never touched.
enum KilnMark {
    /// Inside a git directory Kiln created (`.git/kiln-checkout`, or the
    /// cache folder's own): a person's clone of the same repository has none.
    static let repositoryFile = "kiln-checkout"
    /// At the root of a work tree the archive strategy unpacked (no `.git`).
    static let archiveFile = ".kiln-checkout"
    /// Inside the target while the archive strategy unpacks (ArchiveCheckout):
    /// Kiln's own, removed on every way out, and by the next run after a kill.
    static let unpackingFolder = ".kiln-unpacking"

    static func write(_ path: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Marks a git directory Kiln has just created.
    static func markRepository(_ gitDirectory: String) throws {
        try write(
            (gitDirectory as NSString).appendingPathComponent(repositoryFile),
            "made by kiln-checkout: it may fetch into, check out and clean this repository and its work tree\n")
    }

    static func isMarkedRepository(_ gitDirectory: String) -> Bool {
        FileManager.default.fileExists(atPath: (gitDirectory as NSString).appendingPathComponent(repositoryFile))
    }

    /// Whether the work tree `folder` is Kiln's: its `.git` (a folder, or a
    /// `gitdir:` file pointing at a cache) is a marked repository, or an
    /// archive checkout left its mark.
    static func isKilnsWorkTree(_ folder: String) -> Bool {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: (folder as NSString).appendingPathComponent(archiveFile)) { return true }
        let dotGit = (folder as NSString).appendingPathComponent(".git")
        var isFolder: ObjCBool = false
        guard fileManager.fileExists(atPath: dotGit, isDirectory: &isFolder) else { return false }
        if isFolder.boolValue { return isMarkedRepository(dotGit) }
        // A `.git` file holds "gitdir: <path>" (gitrepository-layout(5)).
        guard let text = try? String(contentsOfFile: dotGit, encoding: .utf8),
            let line = text.split(separator: "\n").first, line.hasPrefix("gitdir:")
        else { return false }
        var gitDirectory = line.dropFirst("gitdir:".count).trimmingCharacters(in: .whitespaces)
        if !gitDirectory.hasPrefix("/") { gitDirectory = (folder as NSString).appendingPathComponent(gitDirectory) }
        return isMarkedRepository(gitDirectory)
    }
}

/// A folder kiln-checkout would have to empty or clean, holding things it
/// did not make: refused before anything is written or removed.
public struct ForeignFolder: ExitStatusProviding, CustomStringConvertible, Sendable {
    /// The folder, and why it is used ("the project folder", "the cache folder").
    public let folder: String
    public let role: String
    public let entries: [String]

    public var exitStatus: KilnExit { .badConfiguration }

    public var description: String {
        let shown = entries.sorted().prefix(5).joined(separator: ", ")
        let more = entries.count > 5 ? " and \(entries.count - 5) more" : ""
        return """
            \(role) \(folder) holds \(shown)\(more), which kiln-checkout did not make: it checks out only into \
            an empty folder, one holding only the artifacts folder, or one it checked out before (marked by \
            .git/\(KilnMark.repositoryFile) or \(KilnMark.archiveFile)); move them away, or choose another \
            folder (--target, --cache-dir)
            """
    }
}

/// Which work tree the index of a Kiln repository describes, and at which
/// commit: written after each checkout, removed before the next one starts,
/// so that only a checkout that finished is trusted. With it the next
/// checkout into the same folder touches only what changed.
struct WorkTreeRecord: Equatable {
    static let file = "kiln-worktree"
    let workdir: String
    let commit: String

    static func path(_ gitDirectory: String) -> String { (gitDirectory as NSString).appendingPathComponent(file) }

    static func read(_ gitDirectory: String) -> WorkTreeRecord? {
        guard let text = try? String(contentsOfFile: path(gitDirectory), encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 2, lines[1].count == 40 else { return nil }
        return WorkTreeRecord(workdir: lines[0], commit: lines[1])
    }

    static func remove(_ gitDirectory: String) { _ = unlink(path(gitDirectory)) }

    func write(_ gitDirectory: String) throws {
        try KilnMark.write(Self.path(gitDirectory), "\(workdir)\n\(commit)\n")
    }
}
