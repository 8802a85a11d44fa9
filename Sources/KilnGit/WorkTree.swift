import CLibGit2
import Foundation
import KilnCore

extension GitRepository {
    /// Paths of the work tree that git does not track, relative to it:
    /// untracked ones, and ignored ones when asked. An untracked folder is
    /// one entry ending in "/" (as `git clean` sees it).
    public func untrackedPaths(includeIgnored: Bool) throws -> [(path: String, ignored: Bool)] {
        var options = git_status_options()
        try GitError.check(git_status_options_init(&options, UInt32(GIT_STATUS_OPTIONS_VERSION)), "prepare a status")
        options.show = GIT_STATUS_SHOW_WORKDIR_ONLY
        options.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED.rawValue
        if includeIgnored { options.flags |= GIT_STATUS_OPT_INCLUDE_IGNORED.rawValue }
        var list: OpaquePointer?
        try GitError.check(git_status_list_new(&list, pointer, &options), "list untracked files")
        defer { git_status_list_free(list) }
        var paths: [(path: String, ignored: Bool)] = []
        for index in 0..<git_status_list_entrycount(list) {
            guard let entry = git_status_byindex(list, index) else { continue }
            let status = entry.pointee.status.rawValue
            let wanted =
                status & GIT_STATUS_WT_NEW.rawValue != 0
                || (includeIgnored && status & GIT_STATUS_IGNORED.rawValue != 0)
            guard wanted, let delta = entry.pointee.index_to_workdir, let path = delta.pointee.new_file.path else {
                continue
            }
            paths.append((String(cString: path), status & GIT_STATUS_IGNORED.rawValue != 0))
        }
        return paths
    }

    // MARK: submodules

    /// The submodules of HEAD's tree, with the commit each is recorded at.
    public func submodules() throws -> [(name: String, path: String, url: String, commit: String?)] {
        final class Collected { var names: [String] = [] }
        let collected = Collected()
        let result = git_submodule_foreach(
            pointer,
            { _, name, payload in
                let collected = Unmanaged<Collected>.fromOpaque(payload!).takeUnretainedValue()
                if let name { collected.names.append(String(cString: name)) }
                return 0
            }, Unmanaged.passUnretained(collected).toOpaque())
        try GitError.check(result, "list submodules")
        return try collected.names.map { name in
            var submodule: OpaquePointer?
            try GitError.check(git_submodule_lookup(&submodule, pointer, name), "look up submodule \(name)")
            defer { git_submodule_free(submodule) }
            var commit: String?
            if let id = git_submodule_index_id(submodule) ?? git_submodule_head_id(submodule) {
                var oid = id.pointee
                commit = Self.hex(&oid)
            }
            return (
                name, git_submodule_path(submodule).map { String(cString: $0) } ?? name,
                git_submodule_url(submodule).map { String(cString: $0) } ?? "", commit
            )
        }
    }

    /// `git submodule update --init [--depth N]` for one submodule: its URL
    /// resolved against the parent's remote (relative URLs), cloned or fetched
    /// with the same credentials callback and `depth`, checked out at the
    /// recorded commit. Returns the submodule's own repository, for recursion.
    public func updateSubmodule(
        _ name: String, credentials: GitCredentials?, depth: FetchDepth = .unlimited,
        limits: TransferLimits = TransferLimits(), progress: @escaping (TransferProgress) -> Void = { _ in }
    ) throws -> (repository: GitRepository, received: TransferProgress) {
        var submodule: OpaquePointer?
        try GitError.check(git_submodule_lookup(&submodule, pointer, name), "look up submodule \(name)")
        defer { git_submodule_free(submodule) }
        try GitError.check(git_submodule_init(submodule, 1), "initialise submodule \(name)")
        let callbacks = TransferCallbacks(credentials: credentials, progress: progress)
        var options = git_submodule_update_options()
        try GitError.check(
            git_submodule_update_options_init(&options, UInt32(GIT_SUBMODULE_UPDATE_OPTIONS_VERSION)),
            "prepare a submodule update")
        callbacks.install(into: &options.fetch_opts.callbacks)
        options.fetch_opts.proxy_opts.type = GIT_PROXY_AUTO
        options.checkout_opts.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue
        options.allow_fetch = 1
        // A libgit2 without shallow support fetches the whole history (LibGit2.supportsShallow).
        CKiln_git_fetch_options_set_depth(&options.fetch_opts, depth.libgit2)
        let watch = TransferWatch.shared.begin(limits)
        defer { watch?.end() }
        let result = withExtendedLifetime(callbacks) { git_submodule_update(submodule, 1, &options) }
        if result == GIT_ENOTFOUND.rawValue, depth != .unlimited, let recorded = git_submodule_index_id(submodule) {
            // The recorded commit is older than the last `depth` commits of the
            // submodule's default branch: git then fetches that commit itself, at
            // the same depth (builtin/submodule--helper.c, update_submodule:
            // "Fetched in submodule path ..., but it did not contain ...").
            var oid = recorded.pointee
            let commit = Self.hex(&oid)
            var child: OpaquePointer?
            try GitError.check(git_submodule_open(&child, submodule), "open submodule \(name)")
            let repository = GitRepository(adopting: child!)
            let received = try repository.fetch(
                refspecs: [commit], credentials: credentials, tags: .none, depth: depth, limits: limits,
                progress: progress)
            try repository.checkoutDetached(commit)
            return (repository, received)
        }
        if result < 0 {
            var error = GitError.last(
                result,
                "update submodule \(name) from \(git_submodule_url(submodule).map { String(cString: $0) } ?? "?")")
            error.credentialsRefused = callbacks.refused
            try Self.stoppedTransfer(error.operation, limits: limits)
            throw error
        }
        var child: OpaquePointer?
        try GitError.check(git_submodule_open(&child, submodule), "open submodule \(name)")
        return (GitRepository(adopting: child!), callbacks.last)
    }
}

/// One walk of the work tree against the index (`git status`): the tracked
/// paths that differ from the index (changed, removed or retyped since the
/// checkout that wrote it), and the untracked ones (ignored ones when asked),
/// an untracked folder as one entry ending in "/".
public struct WorkTreeScan: Sendable {
    public var changedTracked: [String] = []
    public var untracked: [(path: String, ignored: Bool)] = []
}

extension GitRepository {
    public func scanWorkTree(includeIgnored: Bool) throws -> WorkTreeScan {
        var options = git_status_options()
        try GitError.check(git_status_options_init(&options, UInt32(GIT_STATUS_OPTIONS_VERSION)), "prepare a status")
        options.show = GIT_STATUS_SHOW_WORKDIR_ONLY
        // Submodules are updated on their own, from their recorded commits.
        options.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED.rawValue | GIT_STATUS_OPT_EXCLUDE_SUBMODULES.rawValue
        if includeIgnored { options.flags |= GIT_STATUS_OPT_INCLUDE_IGNORED.rawValue }
        var list: OpaquePointer?
        try GitError.check(git_status_list_new(&list, pointer, &options), "scan the work tree")
        defer { git_status_list_free(list) }
        let changed =
            GIT_STATUS_WT_MODIFIED.rawValue | GIT_STATUS_WT_DELETED.rawValue | GIT_STATUS_WT_TYPECHANGE.rawValue
            | GIT_STATUS_WT_RENAMED.rawValue | GIT_STATUS_WT_UNREADABLE.rawValue
        var scan = WorkTreeScan()
        for index in 0..<git_status_list_entrycount(list) {
            guard let entry = git_status_byindex(list, index), let delta = entry.pointee.index_to_workdir else {
                continue
            }
            let status = entry.pointee.status.rawValue
            if status & changed != 0 {
                for path in Set([delta.pointee.old_file.path, delta.pointee.new_file.path].compactMap({ $0 })) {
                    scan.changedTracked.append(String(cString: path))
                }
            } else if status & GIT_STATUS_WT_NEW.rawValue != 0 || status & GIT_STATUS_IGNORED.rawValue != 0,
                let path = delta.pointee.new_file.path
            {
                scan.untracked.append((String(cString: path), status & GIT_STATUS_IGNORED.rawValue != 0))
            }
        }
        return scan
    }

    /// The paths whose entries differ between two commits' trees (a rename
    /// is its old and its new path; a mode change, a type change, a
    /// submodule's new commit count as changes).
    public func changedPaths(from old: String, to new: String) throws -> [String] {
        let oldTree = try tree(of: old)
        defer { git_tree_free(oldTree) }
        let newTree = try tree(of: new)
        defer { git_tree_free(newTree) }
        var options = git_diff_options()
        try GitError.check(git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION)), "prepare a diff")
        options.flags = GIT_DIFF_INCLUDE_TYPECHANGE.rawValue | GIT_DIFF_SKIP_BINARY_CHECK.rawValue
        var diff: OpaquePointer?
        try GitError.check(
            git_diff_tree_to_tree(&diff, pointer, oldTree, newTree, &options), "compare \(old) with \(new)")
        defer { git_diff_free(diff) }
        var paths: [String] = []
        for index in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, index) else { continue }
            for path in [delta.pointee.old_file.path, delta.pointee.new_file.path].compactMap({ $0 }) {
                let text = String(cString: path)
                if paths.last != text { paths.append(text) }
            }
        }
        return paths
    }

    /// Makes the index's cached tree (gitformat-index(5), "Cache tree") valid again and writes it down, so
    /// that the next `indexMatches` is answered from it. A checkout leaves the cache invalid for every folder
    /// it wrote into (libgit2 writes none at all after a whole checkout); `git_index_write_tree` rebuilds only
    /// those folders' trees, reusing the valid ones, and keeps the result in the index it then writes.
    /// Without it, the next warm job's `indexMatches` rebuilt every tree of the index: a third of its CPU
    /// on the benchmark's 15,000 files (perf, issue 17).
    public func cacheIndexTree() throws {
        var index: OpaquePointer?
        try GitError.check(git_repository_index(&index, pointer), "open the index")
        defer { git_index_free(index) }
        var written = git_oid()
        try GitError.check(git_index_write_tree(&written, index), "compute the index's tree")
        try GitError.check(git_index_write(index), "write the index")
    }

    /// Whether the index holds exactly the tree of `sha` (nothing staged
    /// since the checkout that wrote it). libgit2 answers from the index's
    /// cached tree when it is valid.
    public func indexMatches(_ sha: String) throws -> Bool {
        var index: OpaquePointer?
        try GitError.check(git_repository_index(&index, pointer), "open the index")
        defer { git_index_free(index) }
        var written = git_oid()
        guard git_index_write_tree(&written, index) == 0 else { return false }
        let commitTree = try tree(of: sha)
        defer { git_tree_free(commitTree) }
        return git_oid_equal(&written, git_tree_id(commitTree)) == 1
    }

    func tree(of sha: String) throws -> OpaquePointer {
        var oid = try Self.oid(sha)
        var commit: OpaquePointer?
        try GitError.check(git_commit_lookup(&commit, pointer, &oid), "look up commit \(sha)")
        defer { git_commit_free(commit) }
        var tree: OpaquePointer?
        try GitError.check(git_commit_tree(&tree, commit), "read the tree of \(sha)")
        return tree!
    }
}

extension GitRepository {
    /// Whether the index tracks `path`, or anything under it when it ends in "/".
    public func tracks(_ path: String) throws -> Bool {
        var index: OpaquePointer?
        try GitError.check(git_repository_index(&index, pointer), "open the index")
        defer { git_index_free(index) }
        if path.hasSuffix("/") {
            var position = 0
            return git_index_find_prefix(&position, index, path) == 0
        }
        return git_index_get_bypath(index, path, 0) != nil
    }
}
