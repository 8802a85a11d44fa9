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
        do {
            received = try clock.time("fetch") { try fetch(repository.repository) }
            try clock.time("checkout") { try checkout(repository.repository) }
        } catch let error as GitError where reused && !error.isNetwork && !error.isAuthentication {
            // A reused repository that breaks on its own objects (corrupt,
            // truncated) is thrown away and cloned again: a cache must never fail a job.
            discarded = "it failed: \(error.message)"
            log.warning("discarding the repository in \(gitDirectory) (\(discarded!)); cloning again")
            repository = try clock.time("prepare") { try prepare(reuse: false, discarded: &discarded) }
            received = try clock.time("fetch") { try fetch(repository.repository) }
            try clock.time("checkout") { try checkout(repository.repository) }
        }
        try clock.time("clean") { try clean(repository.repository) }
        var submodules: [CheckoutResult.Submodule] = []
        if request.submodules != .none {
            try clock.time("submodules") {
                try updateSubmodules(
                    of: repository.repository, prefix: "", recursive: request.submodules == .recursive,
                    into: &submodules, received: &received)
            }
        }
        let version = repository.repository.describe(request.commit) ?? String(request.commit.prefix(8))
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

    private func fetch(_ repository: GitRepository) throws -> TransferProgress {
        let refspecs = request.refspecs
        var received = TransferProgress()
        if !refspecs.isEmpty {
            received = try withRetries("fetch") {
                try log.section("git_fetch", title: "Fetching \(refspecs.joined(separator: " "))", collapsed: true) {
                    let progress = try repository.fetch(
                        refspecs: refspecs, credentials: request.credentials, limits: checkout.transferLimits,
                        progress: checkout.progressReporter("fetch"))
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
        if !repository.hasCommit(request.commit) {
            // Not reachable from those refs (or there were none): ask for the
            // commit itself, which servers that allow reachable SHA-1s in wants answer.
            log.line(
                """
                fetch: \(request.commit) is not on \
                \(refspecs.isEmpty ? "any ref given" : refspecs.joined(separator: " ")); asking for it by id
                """
            )
            do {
                let direct = try repository.fetch(
                    refspecs: [request.commit], credentials: request.credentials, tags: .none,
                    limits: checkout.transferLimits)
                received.receivedBytes += direct.receivedBytes
                received.receivedObjects += direct.receivedObjects
            } catch let error as GitError {
                // A server that does not answer wants by id: the check below names the commit.
                log.line("fetch: asking for \(request.commit) by id failed: \(error.message)")
            }
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

    private func checkout(_ repository: GitRepository) throws {
        try repository.checkoutDetached(request.commit)
        let head = try repository.headCommit()
        guard head == request.commit else {
            throw KilnError.internalError("after checkout HEAD is \(head), not \(request.commit)")
        }
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

    /// `git clean` with `GIT_CLEAN_FLAGS`, never touching the spared folders.
    private func clean(_ repository: GitRepository) throws {
        let flags = request.clean
        guard flags.enabled else { return }
        var removed = 0
        for entry in try repository.untrackedPaths(includeIgnored: flags.ignored || flags.onlyIgnored) {
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
        }
        if removed > 0 { log.line("clean: removed \(removed) untracked path\(removed == 1 ? "" : "s")") }
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
                        submodule.name, credentials: request.credentials, limits: checkout.transferLimits,
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
