import CLibGit2
import Foundation

/// Whether a checkout can need libgit2's content filters, which it otherwise skips (`disable_filters`).
///
/// libgit2 loads the filters for every file a checkout writes (checkout.c, `blob_content_to_file`), and
/// each filter that reads attributes looks them up (filter.c: crlf for `crlf`, `eol` and `text`, ident for
/// `ident`; Kiln registers no other filter). Every lookup resolves the file's folder with realpath(3)
/// (attr.c `collect_attr_files`, fs_path.c `git_fs_path_find_dir`): one readlink per component of the
/// folder's absolute path, twice per file, about 6,000 calls for the 264 paths of the benchmark's warm
/// checkout and 23 per file of a clone. With no attribute set anywhere and `core.autocrlf` false (git's
/// default), both filters pass every file through unchanged (crlf.c `convert_attrs`: no `text`, `crlf` or
/// `eol` and autocrlf false is binary; ident applies only to files with the attribute), so skipping them
/// writes the same bytes.
extension GitRepository {
    /// Whether the checkout of `sha` (only `paths`, when given, over a work tree and index that hold the
    /// rest) can need a content filter.
    func contentFiltersMayApply(checkingOut sha: String, limitedTo paths: [String]?) throws -> Bool {
        var folders: Set<String>
        var tracked: Bool
        if let paths {
            folders = Self.folders(holding: paths)
            // A .gitattributes the commit adds, changes or removes is among the paths; the others are in the index.
            tracked = paths.contains { ($0 as NSString).lastPathComponent == ".gitattributes" }
        } else {
            let tree = try tree(of: sha)
            defer { git_tree_free(tree) }
            (folders, tracked) = try self.folders(of: tree)
        }
        if !tracked { tracked = try indexHoldsAttributes(in: folders) }
        return contentFiltersMayApply(folders: folders, trackedAttributes: tracked)
    }

    /// Whether an attribute can be set for a file written into `folders` (paths relative to the work tree,
    /// "" for its top), or `core.autocrlf` converts line endings. `trackedAttributes` says whether the
    /// tree or index being checked out has a `.gitattributes` in one of those folders. The attribute files
    /// libgit2 reads (attr.c `attr_setup` and `collect_attr_files`): the system one, `core.attributesfile`
    /// or the XDG one, `info/attributes` in the repository, and `.gitattributes` in each folder from the
    /// file's up to the top, in the work tree or the index.
    func contentFiltersMayApply(folders: Set<String>, trackedAttributes: Bool) -> Bool {
        if trackedAttributes { return true }
        var config: OpaquePointer?
        guard git_repository_config_snapshot(&config, pointer) == 0 else { return true }
        defer { git_config_free(config) }
        // core.autocrlf: anything but false ("true", "input") converts files without attributes.
        var autocrlf: Int32 = 0
        switch git_config_get_bool(&autocrlf, config, "core.autocrlf") {
        case 0 where autocrlf == 0: break
        case GIT_ENOTFOUND.rawValue: break
        default: return true
        }
        var attributesFile: UnsafePointer<CChar>?
        if git_config_get_string(&attributesFile, config, "core.attributesfile") == 0 { return true }
        let fileManager = FileManager.default
        let outside =
            Self.searchPath(GIT_CONFIG_LEVEL_SYSTEM).map { ($0 as NSString).appendingPathComponent("gitattributes") }
            + Self.searchPath(GIT_CONFIG_LEVEL_XDG).map { ($0 as NSString).appendingPathComponent("attributes") }
            + [(gitDirectory as NSString).appendingPathComponent("info/attributes")]
        if outside.contains(where: { fileManager.fileExists(atPath: $0) }) { return true }
        guard let workdir else { return true }
        return folders.contains { folder in
            fileManager.fileExists(atPath: (workdir as NSString).appendingPathComponent(folder + "/.gitattributes"))
        }
    }

    /// The folders holding `paths`, and all theirs up to the top ("").
    static func folders(holding paths: [String]) -> Set<String> {
        var folders: Set<String> = [""]
        for path in paths {
            var folder = (path as NSString).deletingLastPathComponent
            while !folder.isEmpty, folders.insert(folder).inserted {
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        return folders
    }

    /// The folders of `tree` and whether one of them holds a `.gitattributes`.
    func folders(of tree: OpaquePointer) throws -> (folders: Set<String>, attributes: Bool) {
        final class Walk {
            var folders: Set<String> = [""]
            var attributes = false
        }
        let walk = Walk()
        let result = git_tree_walk(
            tree, GIT_TREEWALK_PRE,
            { root, entry, payload in
                let walk = Unmanaged<Walk>.fromOpaque(payload!).takeUnretainedValue()
                guard let entry, let name = git_tree_entry_name(entry) else { return 0 }
                if git_tree_entry_type(entry) == GIT_OBJECT_TREE {
                    walk.folders.insert(String(cString: root!) + String(cString: name))
                } else if strcmp(name, ".gitattributes") == 0 {
                    walk.attributes = true
                }
                return 0
            }, Unmanaged.passUnretained(walk).toOpaque())
        try GitError.check(result, "list the folders of a tree")
        return (walk.folders, walk.attributes)
    }

    /// Whether the index holds a `.gitattributes` in one of `folders`.
    func indexHoldsAttributes(in folders: Set<String>) throws -> Bool {
        var index: OpaquePointer?
        try GitError.check(git_repository_index(&index, pointer), "open the index")
        defer { git_index_free(index) }
        return folders.contains { folder in
            git_index_get_bypath(index, folder.isEmpty ? ".gitattributes" : folder + "/.gitattributes", 0) != nil
        }
    }

    /// libgit2's search path of a configuration level: folders separated by ":" (GIT_PATH_LIST_SEPARATOR).
    static func searchPath(_ level: git_config_level_t) -> [String] {
        var buffer = git_buf()
        defer { git_buf_dispose(&buffer) }
        guard CKiln_git_search_path(level.rawValue, &buffer) == 0, let text = buffer.ptr else { return [] }
        return String(cString: text).split(separator: ":").map(String.init)
    }
}
