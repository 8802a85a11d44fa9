import Foundation
import KilnArtifacts
import KilnCore
import KilnGit
import KilnHTTP

/// kiln-checkout: puts the pipeline's commit into the project folder, with
/// libgit2 (clone, fetch) or GitLab's archive API, sparing the artifacts
/// folder that earlier jobs' artifacts were unpacked into, and writes
/// checkout.json and checkout.env (`KILN_COMMIT`, `KILN_VERSION`).
public struct CheckoutStage {
    public let context: StageContext
    /// For the archive strategy (GitLab's repository archive API).
    public let http: HTTPClient
    public let flags: CheckoutFlags

    public init(context: StageContext, http: HTTPClient, flags: CheckoutFlags) {
        self.context = context
        self.http = http
        self.flags = flags
    }

    @discardableResult
    public func run() throws -> CheckoutResult {
        let request = try CheckoutRequest.resolve(
            flags, settings: context.settings, artifactsDirectory: context.artifacts.directory, log: context.log)
        let title =
            "Checking out \(request.commit.prefix(12)) (\(request.strategy.rawValue)) from \(request.repositoryURL)"
        let result = try context.log.section("kiln_checkout", title: title) {
            try CheckoutRun(
                request: request, log: context.log, runner: context.runner, http: http, clock: context.clock,
                toolEnvironment: context.job.environmentForTools(masking: context.log.secrets)
            ).run()
        }
        var dotenv = Dotenv()
        dotenv.set("KILN_COMMIT", result.commit)
        dotenv.set("KILN_VERSION", result.versionString)
        try context.artifacts.write(result, dotenv: dotenv, dotenvFileName: "checkout.env")
        context.log.line(
            "checkout: \(result.versionString) in \(request.target); \(context.artifacts.path("checkout.json"))")
        return result
    }
}

/// One checkout of one resolved request: the strategies' shared parts (the
/// folders spared, progress lines, the result).
struct CheckoutRun {
    let request: CheckoutRequest
    let log: LogWriter
    let runner: ProcessRunner
    let http: HTTPClient
    let clock: Clock
    /// The job's environment without its secrets, for the tools Kiln runs for itself (tar).
    let toolEnvironment: [String: String]
    var retry = RetryPolicy(maxAttempts: 4, baseDelay: 1, maxDelay: 8)
    /// Folders inside the target that a checkout never removes, relative
    /// to it ("kiln/"): the artifacts folder (earlier jobs' artifacts are
    /// unpacked there) and the repository cache when it is a `cache:` path
    /// inside the project. Resolved once: `standardizingPath` reads every
    /// symbolic link on the way (a readlink per component), and the clean
    /// asks for every path it looks at.
    let sparedPaths: [String]

    init(
        request: CheckoutRequest, log: LogWriter, runner: ProcessRunner, http: HTTPClient, clock: Clock,
        toolEnvironment: [String: String]
    ) {
        self.request = request
        self.log = log
        self.runner = runner
        self.http = http
        self.clock = clock
        self.toolEnvironment = toolEnvironment
        retry.sleep = clock.sleep
        let target = request.target.hasSuffix("/") ? request.target : request.target + "/"
        sparedPaths = [request.artifactsDirectory, request.cacheDirectory].compactMap { folder in
            guard let folder else { return nil }
            let standardized = (folder as NSString).standardizingPath + "/"
            guard standardized.hasPrefix(target) else { return nil }
            return String(standardized.dropFirst(target.count))
        }
    }

    func run() throws -> CheckoutResult {
        if case .commits(let depth) = request.depth, request.strategy != .archive, !LibGit2.supportsShallow {
            log.warning(
                """
                GIT_DEPTH=\(depth) is not honoured: libgit2 \(LibGit2.version) cannot fetch shallow (1.8 can; \
                scripts/libgit2-backports installs it on Debian 12), so the whole history of the fetched refs is \
                received. The archive strategy (KILN_GIT_STRATEGY=archive) downloads only the commit's files; the \
                fetch strategy with a cache (--cache-dir) receives only what is new.
                """)
        }
        try refuseForeignFolders()
        switch request.cleanRequest {
        case .gitLabDefault: break
        case .asked(let source): log.line("clean: \(request.clean.text), asked by \(source)")
        case .notAsked:
            log.line(
                """
                clean: not asked, so nothing is removed (outside a GitLab job, GITLAB_CI unset, Kiln cleans only \
                when given --clean-flags, GIT_CLEAN_FLAGS or checkout.clean_flags)
                """)
        }
        switch request.strategy {
        case .archive: return try ArchiveCheckout(checkout: self).run()
        case .clone, .fetch: return try GitCheckout(checkout: self).run()
        }
    }

    /// Whether removing this target-relative path would touch a spared folder.
    func isSpared(_ path: String) -> Bool {
        let path = path.hasSuffix("/") ? path : path + "/"
        return sparedPaths.contains { $0.hasPrefix(path) || path.hasPrefix($0) }
    }

    /// Names in the target other than the spared folders (and, when asked, `.git`).
    func foreignEntries(keepingGit: Bool) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: request.target)) ?? []
        return names.filter { !isSpared($0) && !(keepingGit && $0 == ".git") && $0 != KilnMark.unpackingFolder }
    }

    /// The no-progress time and the job's cancellation, for every git transfer.
    var transferLimits: TransferLimits {
        TransferLimits(noProgressTimeout: request.noProgressTimeout, cancellation: runner.cancellation)
    }

    /// Refuses, before anything is written or removed, a project folder or
    /// cache folder that holds anything Kiln did not make (its artifacts
    /// folder, its cache, a repository or archive checkout it marked).
    func refuseForeignFolders() throws {
        let entries = foreignEntries(keepingGit: false)
        if !entries.isEmpty && !KilnMark.isKilnsWorkTree(request.target) {
            throw ForeignFolder(folder: request.target, role: "the project folder", entries: entries)
        }
        if let cache = request.cacheDirectory {
            let inside = (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
            if !inside.isEmpty && !KilnMark.isMarkedRepository(cache) {
                throw ForeignFolder(folder: cache, role: "the cache folder", entries: inside)
            }
        }
    }

    /// Empties the target but for the spared folders, when cleaning was
    /// asked for (or is GitLab's default in a job); otherwise keeps it.
    func clearTarget() throws {
        guard request.clean.enabled else { return }
        for name in foreignEntries(keepingGit: false) {
            try FileManager.default.removeItem(atPath: (request.target as NSString).appendingPathComponent(name))
        }
    }

    /// Progress lines: at most one a second, never one per object.
    func progressReporter(_ what: String) -> (TransferProgress) -> Void {
        let state = ProgressState(started: clock.now())
        let clock = clock
        return { progress in
            let now = clock.now()
            guard now.timeIntervalSince(state.lastReport) >= 1 else { return }
            state.lastReport = now
            let elapsed = max(0.001, now.timeIntervalSince(state.started))
            log.line(
                """
                \(what): \(progress.receivedObjects)/\(progress.totalObjects) objects, \
                \(Self.mebibytes(progress.receivedBytes)), \
                \(Self.mebibytes(Int(Double(progress.receivedBytes) / elapsed)))/s
                """
            )
        }
    }

    static func mebibytes(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    func result(
        version: String, info: CommitInfo?, submodules: [CheckoutResult.Submodule], received: TransferProgress,
        phases: [String: Double], discarded: String?
    ) -> CheckoutResult {
        CheckoutResult(
            repository: request.repositoryURL, commit: request.commit, shortCommit: String(request.commit.prefix(8)),
            ref: request.ref, tag: request.tag, pipelineID: request.pipelineID, versionString: version,
            commitTime: info?.time, subject: info?.subject, strategy: request.strategy, submodules: submodules,
            bytesReceived: received.receivedBytes, objectsReceived: received.receivedObjects,
            phases: phases.mapValues { ($0 * 1000).rounded() / 1000 }, discardedCache: discarded)
    }
}

/// The progress callback's memory: libgit2 calls it on the fetching thread only.
private final class ProgressState {
    let started: Date
    var lastReport = Date.distantPast
    init(started: Date) { self.started = started }
}

/// Times phases for checkout.json.
struct PhaseClock {
    private(set) var phases: [String: Double] = [:]
    mutating func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let started = Date()
        defer { phases[name, default: 0] += Date().timeIntervalSince(started) }
        return try body()
    }

    /// Adds the phases timed inside another (the warm checkout's `walk`, within `checkout`).
    mutating func add(_ other: PhaseClock) {
        phases.merge(other.phases, uniquingKeysWith: +)
    }
}
