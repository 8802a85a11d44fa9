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

    /// `git submodule update --init` for one submodule: its URL resolved
    /// against the parent's remote (relative URLs), cloned or fetched with the
    /// same credentials callback, checked out at the recorded commit.
    /// Returns the submodule's own repository, for recursion.
    public func updateSubmodule(
        _ name: String, credentials: GitCredentials?, limits: TransferLimits = TransferLimits(),
        progress: @escaping (TransferProgress) -> Void = { _ in }
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
        let watch = TransferWatch.shared.begin(limits)
        defer { watch?.end() }
        let result = withExtendedLifetime(callbacks) { git_submodule_update(submodule, 1, &options) }
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
