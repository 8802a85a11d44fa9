import CLibGit2
import Foundation

extension GitRepository {
    /// Every path the index tracks, in the index's order (a submodule is its
    /// folder's path), read without touching the work tree.
    public func trackedPaths() throws -> [String] {
        var index: OpaquePointer?
        try GitError.check(git_repository_index(&index, pointer), "open the index")
        defer { git_index_free(index) }
        var paths: [String] = []
        let count = git_index_entrycount(index)
        paths.reserveCapacity(count)
        for position in 0..<count {
            guard let entry = git_index_get_byindex(index, position), let path = entry.pointee.path else { continue }
            paths.append(String(cString: path))
        }
        return paths
    }
}
