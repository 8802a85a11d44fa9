import CLibGit2
import Foundation
import KilnCore

/// Which tags a fetch brings besides its refspecs.
public enum TagFollowing: Sendable {
    /// Tags pointing into the fetched history (git's default), so that
    /// `describe` finds the nearest one.
    case auto
    case all
    case none

    var libgit2: git_remote_autotag_option_t {
        switch self {
        case .auto: GIT_REMOTE_DOWNLOAD_TAGS_AUTO
        case .all: GIT_REMOTE_DOWNLOAD_TAGS_ALL
        case .none: GIT_REMOTE_DOWNLOAD_TAGS_NONE
        }
    }
}

/// How much history a fetch asks for: gitlab-runner's `GIT_DEPTH` (a
/// number of commits from each fetched tip; 0 for the whole history).
public enum FetchDepth: Sendable, Equatable {
    /// No depth asked: the whole history of a new repository, or what is new
    /// on top of a (shallow or not) repository's own history.
    case unlimited
    case commits(Int)
    /// Makes a shallow repository whole (`git fetch --unshallow`).
    case unshallow

    var libgit2: Int32 {
        switch self {
        case .unlimited: 0
        case .commits(let count): Int32(clamping: count)
        case .unshallow: CKiln_git_fetch_depth_unshallow()
        }
    }
}

/// A commit's facts for checkout.json.
public struct CommitInfo: Sendable, Equatable {
    public let sha: String
    public let time: Date
    public let subject: String
}

/// A git repository (libgit2 handle), freed with the value.
public final class GitRepository {
    let pointer: OpaquePointer

    private init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Takes ownership of a handle libgit2 opened (a submodule's repository).
    convenience init(adopting pointer: OpaquePointer) {
        self.init(pointer)
    }

    deinit { git_repository_free(pointer) }

    /// Creates an empty repository. With `workdir`, the repository (`gitDirectory`)
    /// and its work tree live apart (a `.git` file in the work tree points back),
    /// as for a repository kept in a GitLab `cache:` folder.
    public static func create(at gitDirectory: String, workdir: String? = nil) throws -> GitRepository {
        LibGit2.initialise()
        var options = git_repository_init_options()
        try GitError.check(
            git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)),
            "prepare to create a repository")
        options.flags = GIT_REPOSITORY_INIT_MKPATH.rawValue
        if workdir == nil {
            // `path` is the work tree; the repository goes in its .git.
            var repository: OpaquePointer?
            try GitError.check(
                git_repository_init_ext(&repository, gitDirectory, &options), "create a repository in \(gitDirectory)")
            return GitRepository(repository!)
        }
        options.flags |= GIT_REPOSITORY_INIT_NO_DOTGIT_DIR.rawValue | GIT_REPOSITORY_INIT_BARE.rawValue
        var repository: OpaquePointer?
        try GitError.check(
            git_repository_init_ext(&repository, gitDirectory, &options), "create a repository in \(gitDirectory)")
        let created = GitRepository(repository!)
        try created.attachWorkdir(workdir!)
        return created
    }

    public static func open(at path: String) throws -> GitRepository {
        LibGit2.initialise()
        var repository: OpaquePointer?
        try GitError.check(
            git_repository_open_ext(&repository, path, GIT_REPOSITORY_OPEN_NO_SEARCH.rawValue, nil),
            "open the repository in \(path)")
        return GitRepository(repository!)
    }

    /// Points a (bare, cached) repository at a work tree and writes the
    /// work tree's `.git` file.
    public func attachWorkdir(_ workdir: String) throws {
        var config: OpaquePointer?
        try GitError.check(git_repository_config(&config, pointer), "read the repository's config")
        defer { git_config_free(config) }
        try GitError.check(git_config_set_bool(config, "core.bare", 0), "unset core.bare")
        try GitError.check(git_repository_set_workdir(pointer, workdir, 1), "attach work tree \(workdir)")
    }

    public var gitDirectory: String { String(cString: git_repository_path(pointer)) }

    public var workdir: String? { git_repository_workdir(pointer).map { String(cString: $0) } }

    public var isBare: Bool { git_repository_is_bare(pointer) == 1 }

    /// Whether the history is cut (a `shallow` file lists the boundary commits).
    public var isShallow: Bool { git_repository_is_shallow(pointer) == 1 }

    // MARK: remotes and fetching

    /// The URL configured for a remote, if any.
    public func remoteURL(_ name: String = "origin") -> String? {
        var remote: OpaquePointer?
        guard git_remote_lookup(&remote, pointer, name) == 0 else { return nil }
        defer { git_remote_free(remote) }
        return git_remote_url(remote).map { String(cString: $0) }
    }

    /// Creates the remote, or changes its URL. The URL must hold no credentials.
    public func setRemote(_ name: String = "origin", url: String) throws {
        if remoteURL(name) == nil {
            var remote: OpaquePointer?
            try GitError.check(git_remote_create(&remote, pointer, name, url), "add remote \(name)")
            git_remote_free(remote)
        } else {
            try GitError.check(git_remote_set_url(pointer, name, url), "set the URL of remote \(name)")
        }
    }

    /// Fetches these refspecs from the remote, offering `credentials`
    /// through the callback. Returns the last transfer statistics.
    @discardableResult
    public func fetch(
        remote name: String = "origin", refspecs: [String], credentials: GitCredentials?,
        tags: TagFollowing = .auto, depth: FetchDepth = .unlimited, limits: TransferLimits = TransferLimits(),
        progress: @escaping (TransferProgress) -> Void = { _ in }
    ) throws -> TransferProgress {
        let url = remoteURL(name) ?? name
        var remote: OpaquePointer?
        try GitError.check(git_remote_lookup(&remote, pointer, name), "look up remote \(name)")
        defer { git_remote_free(remote) }
        let callbacks = TransferCallbacks(credentials: credentials, progress: progress)
        var options = git_fetch_options()
        try GitError.check(git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION)), "prepare a fetch")
        callbacks.install(into: &options.callbacks)
        options.download_tags = tags.libgit2
        options.proxy_opts.type = GIT_PROXY_AUTO
        // A libgit2 without shallow support fetches the whole history (LibGit2.supportsShallow).
        CKiln_git_fetch_options_set_depth(&options, depth.libgit2)
        let watch = TransferWatch.shared.begin(limits)
        defer { watch?.end() }
        let result = withStringArray(refspecs) { specs in
            withExtendedLifetime(callbacks) {
                git_remote_fetch(remote, &specs, &options, "kiln-checkout: fetch")
            }
        }
        if result < 0 {
            // git_error_last() first: any later libgit2 call may reset it.
            var error = GitError.last(result, "fetch \(refspecs.joined(separator: " ")) from \(url)")
            error.credentialsRefused = callbacks.refused
            try Self.stoppedTransfer(error.operation, limits: limits)
            throw error
        }
        return callbacks.last
    }

    /// The remote's refs as advertised (name → id), asking with these credentials.
    public func listRemote(remote name: String = "origin", credentials: GitCredentials?) throws -> [String: String] {
        let url = remoteURL(name) ?? name
        var remote: OpaquePointer?
        try GitError.check(git_remote_lookup(&remote, pointer, name), "look up remote \(name)")
        defer { git_remote_free(remote) }
        let callbacks = TransferCallbacks(credentials: credentials, progress: { _ in })
        var remoteCallbacks = git_remote_callbacks()
        git_remote_init_callbacks(&remoteCallbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        callbacks.install(into: &remoteCallbacks)
        var proxy = git_proxy_options()
        git_proxy_options_init(&proxy, UInt32(GIT_PROXY_OPTIONS_VERSION))
        proxy.type = GIT_PROXY_AUTO
        let connected = withExtendedLifetime(callbacks) {
            git_remote_connect(remote, GIT_DIRECTION_FETCH, &remoteCallbacks, &proxy, nil)
        }
        if connected < 0 {
            var error = GitError.last(connected, "connect to \(url)")
            error.credentialsRefused = callbacks.refused
            throw error
        }
        defer { git_remote_disconnect(remote) }
        var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
        var count = 0
        try GitError.check(git_remote_ls(&heads, &count, remote), "list the refs of \(url)")
        var refs: [String: String] = [:]
        for index in 0..<count {
            guard let head = heads?[index] else { continue }
            var oid = head.pointee.oid
            refs[String(cString: head.pointee.name)] = Self.hex(&oid)
        }
        return refs
    }

    /// Throws what stopped a failed transfer, when Kiln's socket stream did:
    /// the job's cancellation, or the no-progress time.
    static func stoppedTransfer(_ operation: String, limits: TransferLimits) throws {
        if let signal = limits.cancellation?.signal { throw CancelledBySignal(signal: signal) }
        if let peer = TransferWatch.shared.stalledPeer {
            throw TransferStalled(operation: operation, peer: peer, seconds: limits.noProgressTimeout)
        }
    }

    // MARK: commits

    public func hasCommit(_ sha: String) -> Bool {
        guard var oid = try? Self.oid(sha) else { return false }
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, pointer, &oid) == 0 else { return false }
        git_commit_free(commit)
        return true
    }

    public func commitInfo(_ sha: String) throws -> CommitInfo {
        var oid = try Self.oid(sha)
        var commit: OpaquePointer?
        try GitError.check(git_commit_lookup(&commit, pointer, &oid), "look up commit \(sha)")
        defer { git_commit_free(commit) }
        let summary = git_commit_summary(commit).map { String(cString: $0) } ?? ""
        return CommitInfo(
            sha: sha, time: Date(timeIntervalSince1970: TimeInterval(git_commit_time(commit))), subject: summary)
    }

    /// `git checkout -f --detach <sha>`: the work tree and index match the
    /// commit (local changes are overwritten), HEAD is detached at it. With
    /// `paths` (exact paths, no patterns) only those entries are checked out
    /// and every other one is left as it is, unread: right when the entries
    /// outside `paths` already match the commit.
    public func checkoutDetached(_ sha: String, limitedTo paths: [String]? = nil) throws {
        var oid = try Self.oid(sha)
        var commit: OpaquePointer?
        try GitError.check(git_object_lookup(&commit, pointer, &oid, GIT_OBJECT_COMMIT), "look up commit \(sha)")
        defer { git_object_free(commit) }
        var options = git_checkout_options()
        try GitError.check(
            git_checkout_options_init(&options, UInt32(GIT_CHECKOUT_OPTIONS_VERSION)), "prepare a checkout")
        options.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue
        // Without an attribute that turns one on, the filters change nothing and cost a realpath(3) per file.
        if try !contentFiltersMayApply(checkingOut: sha, limitedTo: paths) { options.disable_filters = 1 }
        if let paths {
            // Exact paths: libgit2 then reads only those entries and their folders.
            options.checkout_strategy |= GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH.rawValue
            if !paths.isEmpty {
                try withStringArray(paths) { array in
                    options.paths = array
                    try GitError.check(git_checkout_tree(pointer, commit, &options), "check out \(sha)")
                }
            }
        } else {
            try GitError.check(git_checkout_tree(pointer, commit, &options), "check out \(sha)")
        }
        try GitError.check(git_repository_set_head_detached(pointer, &oid), "detach HEAD at \(sha)")
    }

    /// The commit HEAD points at.
    public func headCommit() throws -> String {
        var oid = git_oid()
        try GitError.check(git_reference_name_to_id(&oid, pointer, "HEAD"), "read HEAD")
        return Self.hex(&oid)
    }

    /// `git describe --tags`: the nearest tag and the distance from it
    /// (`v1.2.0`, `v1.2.0-3-gabc1234`), or nil when no tag reaches the commit.
    /// Computed as git does (TagDescriber), not with `git_describe_commit`, which
    /// took 0.2 s on a 20k-commit history where git takes 0.03 s (issue 17).
    public func describe(_ sha: String) -> String? {
        guard (try? Self.oid(sha)) != nil else { return nil }
        var describer = TagDescriber(repository: pointer)
        guard let (name, depth) = describer.describe(sha) else { return nil }
        if depth == 0 { return name }
        return "\(name)-\(depth)-g\(abbreviated(sha))"
    }

    /// git's abbreviated id (object-name.c, `repo_find_unique_abbrev_r`): `core.abbrev` when it is a number,
    /// else ("auto", the default) half the bits of the packed object count rounded up, at least 7 (`msb(count)
    /// + 1` bits, `DIV_ROUND_UP(len, 2)` hex digits); then longer until no other object shares the prefix.
    /// libgit2's `git_object_short_id` starts from 7 always, which on a 400k-object repository is 3 digits short
    /// of what `git describe` prints.
    func abbreviated(_ sha: String) -> String {
        var length = 7
        var config: OpaquePointer?
        var configured: Int32 = 0
        if git_repository_config_snapshot(&config, pointer) == 0 {
            if git_config_get_int32(&configured, config, "core.abbrev") == 0, configured >= 4 {
                length = Int(min(configured, 40))
            } else {
                let count = packedObjectCount
                if count > 0 {
                    let msb = UInt64.bitWidth - 1 - UInt64(count).leadingZeroBitCount
                    length = max(7, (msb + 1 + 1) / 2)
                }
            }
            git_config_free(config)
        }
        while length < 40 {
            var prefix = git_oid()
            var object: OpaquePointer?
            let text = String(sha.prefix(length))
            guard git_oid_fromstrn(&prefix, text, length) == 0 else { break }
            let found = git_object_lookup_prefix(&object, pointer, &prefix, length, GIT_OBJECT_ANY)
            git_object_free(object)
            if found != GIT_EAMBIGUOUS.rawValue { break }
            length += 1
        }
        return String(sha.prefix(length))
    }

    /// The objects the packs hold, from each index's fan-out table (gitformat-pack(5): version 2 starts with
    /// `\377tOc`, 2, then 256 counts, the last of them the total; version 1 has the counts first): git's
    /// `repo_approximate_object_count` (loose objects are not counted).
    var packedObjectCount: Int {
        let folder = (gitDirectory as NSString).appendingPathComponent("objects/pack")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        var total = 0
        for name in names where name.hasSuffix(".idx") {
            guard let handle = FileHandle(forReadingAtPath: (folder as NSString).appendingPathComponent(name)) else {
                continue
            }
            defer { try? handle.close() }
            guard let head = try? handle.read(upToCount: 8 + 256 * 4), head.count >= 256 * 4 else { continue }
            let bytes = [UInt8](head)
            let version2 = bytes.count == 8 + 256 * 4 && bytes[0..<4] == [0xFF, 0x74, 0x4F, 0x63]
            let last = (version2 ? 8 : 0) + 255 * 4
            total += bytes[last..<(last + 4)].reduce(0) { $0 << 8 | Int($1) }
        }
        return total
    }

    // MARK: helpers

    static func oid(_ sha: String) throws -> git_oid {
        var oid = git_oid()
        guard sha.count == 40, git_oid_fromstr(&oid, sha) == 0 else {
            throw KilnError.badConfiguration("'\(sha)' is not a full 40-character commit SHA")
        }
        return oid
    }

    static func hex(_ oid: inout git_oid) -> String {
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &oid)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// A `git_strarray` for the duration of `body`.
func withStringArray<T>(_ strings: [String], _ body: (inout git_strarray) throws -> T) rethrows -> T {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return try pointers.withUnsafeMutableBufferPointer { buffer in
        var array = git_strarray(strings: buffer.baseAddress, count: strings.count)
        return try body(&array)
    }
}
