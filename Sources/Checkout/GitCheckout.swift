import Foundation
import KilnArtifacts
import KilnCore
import KilnGit

/// The clone and fetch strategies, with libgit2.
struct GitCheckout {
    let checkout: CheckoutRun
    var request: CheckoutRequest { checkout.request }
    var log: LogWriter { checkout.log }

    /// Where the repository lives: the cache folder, or the target's `.git`.
    var gitDirectory: String {
        request.cacheDirectory ?? (request.target as NSString).appendingPathComponent(".git")
    }

    func run() throws -> CheckoutResult {
        var clock = PhaseClock()
        var discarded: String?
        try FileManager.default.createDirectory(atPath: request.target, withIntermediateDirectories: true)
        let reuse = request.strategy == .fetch
        var repository = try clock.time("prepare") { try prepare(reuse: reuse, discarded: &discarded) }
        let reused = repository.reused
        var received: TransferProgress
        var leftovers: [(path: String, ignored: Bool)]?
        do {
            received = try clock.time("fetch") { try fetch(repository.repository, reused: reused) }
            var walk = PhaseClock()
            leftovers = try clock.time("checkout") {
                try checkout(repository.repository, reused: reused, clock: &walk)
            }
            clock.add(walk)
        } catch let error as GitError where reused && !error.isNetwork && !error.isAuthentication {
            // A reused repository that breaks on its own objects (corrupt,
            // truncated) is thrown away and cloned again: a cache must never fail a job.
            discarded = "it failed: \(error.message)"
            log.warning("discarding the repository in \(gitDirectory) (\(discarded!)); cloning again")
            repository = try clock.time("prepare") { try prepare(reuse: false, discarded: &discarded) }
            received = try clock.time("fetch") { try fetch(repository.repository, reused: false) }
            var walk = PhaseClock()
            leftovers = try clock.time("checkout") {
                try checkout(repository.repository, reused: false, clock: &walk)
            }
            clock.add(walk)
        }
        try clock.time("clean") { try clean(repository.repository, leftovers: leftovers) }
        if reused { clock.time("upkeep") { upkeep(repository.repository) } }
        var submodules: [CheckoutResult.Submodule] = []
        if request.submodules != .none {
            try clock.time("submodules") {
                try updateSubmodules(
                    of: repository.repository, prefix: "", recursive: request.submodules == .recursive,
                    into: &submodules, received: &received)
            }
        }
        let version = clock.time("describe") {
            repository.repository.describe(request.commit) ?? String(request.commit.prefix(8))
        }
        let info = try repository.repository.commitInfo(request.commit)
        log.line("checked out \(request.commit) (\(version)): \(info.subject)")
        return checkout.result(
            version: version, info: info, submodules: submodules, received: received, phases: clock.phases,
            discarded: discarded)
    }

    // MARK: preparing the repository

    private func prepare(reuse: Bool, discarded: inout String?) throws -> (repository: GitRepository, reused: Bool) {
        let fileManager = FileManager.default
        if reuse, fileManager.fileExists(atPath: gitDirectory) {
            switch reusable() {
            case .success(let repository):
                log.line("reusing the repository in \(gitDirectory)")
                return (repository, true)
            case .failure(let reason):
                discarded = reason.message
                log.warning("discarding the repository in \(gitDirectory) (\(reason.message)); cloning again")
            }
        }
        // A fresh repository. The folders were checked to be Kiln's own
        // (CheckoutRun.refuseForeignFolders) before anything here removes them.
        if request.strategy == .clone || discarded != nil {
            try checkout.clearTarget()
        }
        try? fileManager.removeItem(atPath: gitDirectory)
        let repository: GitRepository
        if let cache = request.cacheDirectory {
            try? fileManager.removeItem(atPath: (request.target as NSString).appendingPathComponent(".git"))
            repository = try GitRepository.create(at: cache, workdir: request.target)
        } else {
            repository = try GitRepository.create(at: request.target)
        }
        try KilnMark.markRepository(repository.gitDirectory)
        try repository.setRemote(url: request.repositoryURL)
        return (repository, false)
    }

    private struct Unusable: Error { let message: String }

    /// Opens the repository to reuse, or says why it cannot be.
    private func reusable() -> Result<GitRepository, Unusable> {
        if let lock = staleLock() {
            return .failure(Unusable(message: "a stale lock \(lock) is left from an earlier job"))
        }
        let repository: GitRepository
        do {
            repository = try GitRepository.open(at: gitDirectory)
        } catch {
            return .failure(Unusable(message: "it cannot be opened: \(error)"))
        }
        guard let url = repository.remoteURL() else {
            return .failure(Unusable(message: "it has no origin remote"))
        }
        guard url == request.repositoryURL else {
            return .failure(Unusable(message: "it points at another remote, \(url)"))
        }
        if request.cacheDirectory != nil {
            do { try repository.attachWorkdir(request.target) } catch {
                return .failure(Unusable(message: "its work tree cannot be attached: \(error)"))
            }
        }
        return .success(repository)
    }

    /// A `*.lock` file git leaves when a process dies mid-write.
    private func staleLock() -> String? {
        guard let walker = FileManager.default.enumerator(atPath: gitDirectory) else { return nil }
        while let path = walker.nextObject() as? String {
            if path.hasPrefix("objects/") { walker.skipDescendants(); continue }
            if path.hasSuffix(".lock") { return path }
        }
        return nil
    }

    // MARK: fetching and checking out

    /// A new repository receives `GIT_DEPTH` commits of each ref; a reused
    /// one what is new on top of its own history (shallow or not), and is
    /// deepened only when the commit is still not in it.
    private func fetch(_ repository: GitRepository, reused: Bool) throws -> TransferProgress {
        let refspecs = request.refspecs
        // libgit2 1.8 may drop the boundary of earlier fetches (restoreShallowBoundary).
        var boundary = repository.shallowBoundary()
        let depth = reused ? FetchDepth.unlimited : request.depth
        var received = TransferProgress()
        if !refspecs.isEmpty {
            received = try withRetries("fetch") {
                try log.section("git_fetch", title: "Fetching \(refspecs.joined(separator: " "))", collapsed: true) {
                    let progress = try repository.fetch(
                        refspecs: refspecs, credentials: request.credentials, depth: depth,
                        limits: checkout.transferLimits, progress: checkout.progressReporter("fetch"))
                    log.line(
                        """
                        fetch: \(progress.receivedObjects) objects, \
                        \(CheckoutRun.mebibytes(progress.receivedBytes)) received
                        """
                    )
                    return progress
                }
            }
        }
        try repository.restoreShallowBoundary(boundary)
        if !repository.hasCommit(request.commit) {
            boundary = repository.shallowBoundary()
            // Not reachable from those refs (or there were none): ask for the
            // commit itself, which servers that allow reachable SHA-1s in wants
            // answer. A shallow repository asks with no depth: its boundary
            // tells the server what it lacks, and what is below the boundary
            // comes down to what it has (libgit2 1.8 fails a deepening fetch by
            // id into a shallow repository: "incomplete pack header").
            let deepen = repository.isShallow
            let directDepth = deepen ? FetchDepth.unlimited : depth
            log.line(
                """
                fetch: \(request.commit) is not on \
                \(refspecs.isEmpty ? "any ref given" : refspecs.joined(separator: " ")); asking for it by id\
                \(deepen ? ", deepening the shallow repository" : "")
                """
            )
            do {
                let direct = try repository.fetch(
                    refspecs: [request.commit], credentials: request.credentials, tags: .none, depth: directDepth,
                    limits: checkout.transferLimits)
                received.receivedBytes += direct.receivedBytes
                received.receivedObjects += direct.receivedObjects
            } catch let error as GitError {
                // A server that does not answer wants by id: the check below names the commit.
                log.line("fetch: asking for \(request.commit) by id failed: \(error.message)")
            }
            try repository.restoreShallowBoundary(boundary)
        }
        guard repository.hasCommit(request.commit) else {
            throw KilnError(
                .serviceUnavailable,
                """
                commit \(request.commit) is not in \(request.repositoryURL) (fetched: \
                \(refspecs.isEmpty ? "no refs" : refspecs.joined(separator: ", ")), then the commit by id); \
                was it force-pushed away, or is the pipeline's ref gone?
                """)
        }
        return received
    }

    /// `git checkout -f --detach`, touching only what differs when the
    /// index is Kiln's own record of this very work tree (WorkTreeRecord):
    /// one walk of the work tree finds what the last job changed in tracked
    /// files and what it left untracked, a tree-to-tree diff what the new
    /// commit changes, and only those paths are checked out. Returns the
    /// untracked paths for the clean: the walk's, none when the work tree held
    /// nothing before (everything in it is this checkout's), nil when the
    /// clean must look for itself.
    ///
    /// The walk is git's own cost too (`checkout -f` refreshes every index
    /// entry, `clean` reads every folder). Kiln no longer proves instead that
    /// nothing changed since its last clean (a "clean seal", sessions 4-5 of
    /// issue 17): two passes over every tracked path's stamps cost 0.4-0.6 s on
    /// the benchmark's 15k files, the walk they could save 0.06-0.13 s.
    private func checkout(
        _ repository: GitRepository, reused: Bool, clock: inout PhaseClock
    ) throws -> [(path: String, ignored: Bool)]? {
        let last = WorkTreeRecord.read(repository.gitDirectory)
        WorkTreeRecord.remove(repository.gitDirectory)
        // An earlier Kiln's seal (kiln-clean-seal) is its own file, of no use now.
        _ = unlink((repository.gitDirectory as NSString).appendingPathComponent("kiln-clean-seal"))
        let empty = checkout.foreignEntries(keepingGit: true).isEmpty
        var leftovers: [(path: String, ignored: Bool)]?
        if reused, !empty, let last, last.workdir == request.target,
            (try? repository.headCommit()) == last.commit, (try? repository.indexMatches(last.commit)) == true
        {
            let flags = request.clean
            let scan = try clock.time("walk") {
                try repository.scanWorkTree(includeIgnored: flags.enabled && (flags.ignored || flags.onlyIgnored))
            }
            let paths = Set(
                try repository.changedPaths(from: last.commit, to: request.commit) + scan.changedTracked)
            try repository.checkoutDetached(request.commit, limitedTo: paths.sorted())
            log.line(
                """
                checkout: \(paths.count) path\(paths.count == 1 ? "" : "s") differ from \(last.commit.prefix(8)) \
                and the work tree (\(scan.changedTracked.count) changed since), the rest is as it was
                """)
            // An untracked path the new commit tracks now is the checkout's: the clean looks again.
            leftovers =
                try scan.untracked.contains(where: { try repository.tracks($0.path) }) ? nil : scan.untracked
        } else {
            try repository.checkoutDetached(request.commit)
            leftovers = empty ? [] : nil
        }
        let head = try repository.headCommit()
        guard head == request.commit else {
            throw KilnError.internalError("after checkout HEAD is \(head), not \(request.commit)")
        }
        // The next warm job's indexMatches reads the index's cached tree instead of rebuilding every tree.
        // Only a repository the next job reuses: `clone` starts again from nothing.
        if request.strategy == .fetch { try repository.cacheIndexTree() }
        try WorkTreeRecord(workdir: request.target, commit: request.commit).write(repository.gitDirectory)
        return leftovers
    }

    /// Network failures are retried with the one retry policy; a refused
    /// token is not.
    private func withRetries<T>(_ what: String, _ body: () throws -> T) throws -> T {
        try checkout.retry.run(
            what, log: log,
            retryable: { error in
                guard let error = error as? GitError, error.isNetwork, !error.isAuthentication else { return nil }
                return error.message
            }, body)
    }

    // MARK: cleaning

    /// `git clean` with `GIT_CLEAN_FLAGS`, never touching the spared folders,
    /// over the untracked paths the checkout's walk found (or a walk of its own).
    private func clean(_ repository: GitRepository, leftovers: [(path: String, ignored: Bool)]?) throws {
        let flags = request.clean
        guard flags.enabled else { return }
        var removed = 0
        let candidates = try leftovers ?? repository.untrackedPaths(includeIgnored: flags.ignored || flags.onlyIgnored)
        for entry in candidates {
            let path = entry.path
            if flags.onlyIgnored && !entry.ignored { continue }
            if path.hasSuffix("/") && !flags.directories { continue }
            if checkout.isSpared(path) { continue }
            if path == ".git" || path.hasPrefix(".git/") { continue }
            if flags.excluded.contains(where: {
                fnmatch($0, path, 0) == 0 || fnmatch($0, String(path.dropLast()), 0) == 0 || path.hasPrefix($0 + "/")
            }) {
                continue
            }
            try FileManager.default.removeItem(atPath: (request.target as NSString).appendingPathComponent(path))
            removed += 1
            // A walk made before the checkout saw a folder's untracked files, not
            // the folder: it is untracked once the checkout took its tracked files
            // away, and `git clean -d` would remove it whole.
            if leftovers != nil && flags.directories { removeEmptyFolders(above: path) }
        }
        if removed > 0 { log.line("clean: removed \(removed) untracked path\(removed == 1 ? "" : "s")") }
    }

    /// Removes the folders holding `path` that are empty now, deepest first.
    private func removeEmptyFolders(above path: String) {
        var folder = ((path.hasSuffix("/") ? String(path.dropLast()) : path) as NSString).deletingLastPathComponent
        while !folder.isEmpty, !checkout.isSpared(folder),
            rmdir((request.target as NSString).appendingPathComponent(folder)) == 0
        {
            folder = (folder as NSString).deletingLastPathComponent
        }
    }

    // MARK: the cache over time

    /// Packs past this many (one per fetch) are written into one.
    static let packLimit = 32

    /// Keeps a reused repository as fast for the hundredth job as for the
    /// second: the pipeline refs of earlier pipelines go (every fetch offers
    /// every local ref; libgit2 issue 5271), and the packs, one per fetch, are
    /// consolidated past `packLimit`. A failure here fails no job: the next
    /// job tries again, and a repository broken by it is discarded and cloned.
    private func upkeep(_ repository: GitRepository) {
        let current = Set(request.pipelineID.map { ["refs/pipelines/\($0)"] } ?? [])
        do {
            let removed = try repository.removeReferences(matching: "refs/pipelines/*", keeping: current)
            if removed > 0 { log.line("cache: removed \(removed) ref\(removed == 1 ? "" : "s") of earlier pipelines") }
            let packs = repository.packCount
            if packs > Self.packLimit {
                let replaced = try repository.consolidatePacks()
                log.line("cache: \(replaced) packs written into one (more than \(Self.packLimit))")
            }
        } catch {
            log.warning("cache upkeep in \(gitDirectory) failed, the checkout stands: \(error)")
        }
    }

    // MARK: submodules

    private func updateSubmodules(
        of repository: GitRepository, prefix: String, recursive: Bool,
        into list: inout [CheckoutResult.Submodule], received: inout TransferProgress
    ) throws {
        for submodule in try repository.submodules() {
            let path = prefix + submodule.path
            let (child, progress) = try withRetries("submodule \(path)") {
                try log.section("git_submodule", title: "Submodule \(path)", collapsed: true) {
                    try repository.updateSubmodule(
                        submodule.name, credentials: request.credentials, depth: request.submoduleDepth,
                        limits: checkout.transferLimits,
                        progress: checkout.progressReporter("submodule \(path)"))
                }
            }
            received.receivedBytes += progress.receivedBytes
            received.receivedObjects += progress.receivedObjects
            let commit = try child.headCommit()
            if let recorded = submodule.commit, recorded != commit {
                throw KilnError.internalError("submodule \(path) is at \(commit), not at its recorded \(recorded)")
            }
            list.append(.init(name: submodule.name, path: path, commit: commit))
            if recursive {
                try updateSubmodules(of: child, prefix: path + "/", recursive: true, into: &list, received: &received)
            }
        }
    }
}
