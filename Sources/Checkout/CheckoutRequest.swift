import Foundation
import KilnArtifacts
import KilnCore
import KilnGit
import KilnHTTP

public enum SubmoduleStrategy: String, Sendable, CaseIterable, SettingValue {
    case none, normal, recursive
    public static var expected: String { "none, normal or recursive" }
    public init?(settingText: String) { self.init(rawValue: settingText.lowercased()) }
}

/// What `git clean` removes after the checkout, from `GIT_CLEAN_FLAGS`
/// (GitLab's default `-ffdx`; `none` keeps everything).
public struct CleanFlags: Sendable, Equatable, SettingValue {
    public var enabled: Bool
    /// `-d`: untracked folders too.
    public var directories: Bool
    /// `-x`: ignored files too. `-X`: only ignored files.
    public var ignored: Bool
    public var onlyIgnored: Bool
    /// `-e PATTERN`: paths (prefixes) to keep.
    public var excluded: [String]
    /// The flags as written, for the log.
    public var text: String

    public static var expected: String { "git clean flags such as -ffdx, or none" }

    public init?(settingText: String) {
        let words = settingText.split(separator: " ").map(String.init)
        text = words.joined(separator: " ")
        enabled = !(words.isEmpty || words == ["none"])
        directories = false
        ignored = false
        onlyIgnored = false
        excluded = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == "none" && words.count == 1 { break }
            if word == "-e" || word == "--exclude" {
                guard index + 1 < words.count else { return nil }
                excluded.append(words[index + 1])
                index += 2
                continue
            }
            if word.hasPrefix("--exclude=") {
                excluded.append(String(word.dropFirst("--exclude=".count)))
            } else if word.hasPrefix("-") && !word.hasPrefix("--") {
                for flag in word.dropFirst() {
                    switch flag {
                    case "f", "q": break
                    case "d": directories = true
                    case "x": ignored = true
                    case "X": onlyIgnored = true
                    default: return nil
                    }
                }
            } else if word == "--force" || word == "--quiet" {
                // as -f, -q
            } else {
                return nil
            }
            index += 1
        }
    }

    public static let gitLabDefault = CleanFlags(settingText: "-ffdx")!
    public static let keepEverything = CleanFlags(settingText: "none")!
}

/// Why the checkout cleans, or does not: inside a GitLab job GitLab's own
/// default (`-ffdx`) applies, as the runner's checkout would; run by hand
/// (GITLAB_CI unset) nothing is removed unless clean flags were given.
public enum CleanRequest: Sendable, Equatable {
    case gitLabDefault
    case asked(SettingSource)
    case notAsked
}

/// Everything the checkout needs, resolved once from flags, the job's
/// variables and kiln.yml. Holds the job token; never written anywhere.
public struct CheckoutRequest: Sendable {
    /// The repository URL without any user name or password.
    public var repositoryURL: String
    public var credentials: GitCredentials?
    public var commit: String
    public var ref: String?
    public var tag: String?
    public var pipelineID: String?
    public var target: String
    public var artifactsDirectory: String
    public var strategy: CheckoutStrategy
    public var submodules: SubmoduleStrategy
    public var clean: CleanFlags
    public var cleanRequest: CleanRequest
    /// How much history a new repository receives (`GIT_DEPTH`); a reused one
    /// receives what is new, and is deepened only when the commit is not in it.
    public var depth: FetchDepth
    /// How much history a new submodule receives (`GIT_SUBMODULE_DEPTH`, else `depth`).
    public var submoduleDepth: FetchDepth = .unlimited
    public var cacheDirectory: String?
    /// A transfer (git or the archive) that receives and sends nothing for
    /// this long fails with exit 75: `KILN_GIT_TIMEOUT`, `checkout.timeout`, 60 s.
    public var noProgressTimeout: TimeInterval = CheckoutRequest.defaultNoProgressTimeout
    /// For the archive strategy: GitLab's URL and the project (id or path).
    public var serverURL: String
    public var project: String

    public init(
        repositoryURL: String, credentials: GitCredentials?, commit: String, ref: String?, tag: String?,
        pipelineID: String?, target: String, artifactsDirectory: String, strategy: CheckoutStrategy,
        submodules: SubmoduleStrategy, clean: CleanFlags, depth: FetchDepth, cacheDirectory: String?,
        serverURL: String, project: String, cleanRequest: CleanRequest = .gitLabDefault
    ) {
        self.repositoryURL = repositoryURL
        self.credentials = credentials
        self.commit = commit
        self.ref = ref
        self.tag = tag
        self.pipelineID = pipelineID
        self.target = target
        self.artifactsDirectory = artifactsDirectory
        self.strategy = strategy
        self.submodules = submodules
        self.clean = clean
        self.cleanRequest = cleanRequest
        self.depth = depth
        self.cacheDirectory = cacheDirectory
        self.serverURL = serverURL
        self.project = project
    }

    /// The refspecs that reach the commit, as gitlab-runner fetches them:
    /// the pipeline's ref, the branch or the tag.
    public var refspecs: [String] {
        var specs: [String] = []
        if let pipelineID { specs.append("+refs/pipelines/\(pipelineID):refs/pipelines/\(pipelineID)") }
        if let tag {
            specs.append("+refs/tags/\(tag):refs/tags/\(tag)")
        } else if let ref {
            specs.append("+refs/heads/\(ref):refs/remotes/origin/\(ref)")
        }
        return specs
    }
}

extension CheckoutRequest {
    public static let defaultNoProgressTimeout: TimeInterval = 60
    /// gitlab-runner's depth when a project sets none: "Newly-created projects
    /// automatically have a default git depth value of 20" (GitLab docs, CI/CD
    /// pipelines settings, "Limit the number of changes fetched during clone").
    public static let defaultDepth = 20
    /// A day: longer is no longer a stall limit (and keeps the conversion to whole seconds exact).
    public static let maximumNoProgressTimeout: TimeInterval = 86_400
}

/// Flags of `kiln-checkout`, each overriding its variable.
public struct CheckoutFlags: Sendable {
    public var repositoryURL: String?
    public var commit: String?
    public var ref: String?
    public var tag: String?
    public var pipelineID: String?
    public var target: String?
    public var strategy: CheckoutStrategy?
    public var submodules: SubmoduleStrategy?
    public var cleanFlags: CleanFlags?
    public var depth: Int?
    public var submoduleDepth: Int?
    public var cacheDirectory: String?

    public init() {}
}

extension CheckoutRequest {
    /// Resolves the request: flag, else variable, else `checkout.*` in
    /// kiln.yml, else the default. A token inside the repository URL is
    /// taken out of it and used through the credential callback.
    public static func resolve(
        _ flags: CheckoutFlags, settings: Settings, artifactsDirectory: String, log: LogWriter
    ) throws -> CheckoutRequest {
        let job = settings.job
        let rawURL: String
        if let url = flags.repositoryURL ?? job.repositoryURL {
            rawURL = url
        } else if let server = job.serverURL, let path = job.projectPath {
            rawURL = "\(server)/\(path).git"
        } else {
            throw KilnError.badConfiguration(
                "no repository: give --repository-url, or CI_REPOSITORY_URL (or CI_SERVER_URL and CI_PROJECT_PATH)")
        }
        guard var components = URLComponents(string: rawURL), let host = components.host,
            ["http", "https"].contains(components.scheme?.lowercased() ?? "")
        else {
            throw KilnError.badConfiguration("repository URL '\(HTTPError.redacted(rawURL))' is not an http(s) URL")
        }
        let urlUser = components.user
        let urlPassword = components.password
        components.user = nil
        components.password = nil
        let cleanURL = components.string!
        let token = job.jobToken ?? urlPassword
        let hostPort = components.port.map { "\(host):\($0)" } ?? host
        let credentials = token.map {
            GitCredentials(username: urlUser ?? "gitlab-ci-token", password: $0, host: hostPort)
        }

        guard let commit = flags.commit ?? job.commitSHA else {
            throw KilnError.badConfiguration("no commit: give --commit, or CI_COMMIT_SHA")
        }
        guard commit.count == 40, commit.allSatisfy(\.isHexDigit) else {
            throw KilnError.badConfiguration("commit '\(commit)' is not a full 40-character SHA")
        }

        // GIT_STRATEGY is "none" in jobs where Kiln checks out (the runner's
        // own checkout is off); only clone and fetch carry over from it.
        let gitStrategy = job.gitStrategy.flatMap { CheckoutStrategy(rawValue: $0.lowercased()) }.flatMap {
            $0 == .archive ? nil : $0
        }
        let strategy: Resolved<CheckoutStrategy> = try settings.require(
            "checkout.strategy", parsedFlag: ("strategy", flags.strategy), environment: "KILN_GIT_STRATEGY",
            default: gitStrategy ?? .fetch)
        let submodules: Resolved<SubmoduleStrategy> = try settings.require(
            "checkout.submodules", parsedFlag: ("submodules", flags.submodules), environment: "GIT_SUBMODULE_STRATEGY",
            default: SubmoduleStrategy.none)
        let askedClean: Resolved<CleanFlags>? = try settings.resolve(
            "checkout.clean_flags", parsedFlag: ("clean-flags", flags.cleanFlags), environment: "GIT_CLEAN_FLAGS")
        let clean: (flags: CleanFlags, request: CleanRequest) =
            if let askedClean {
                (askedClean.value, .asked(askedClean.source))
            } else if job.isGitLab {
                (.gitLabDefault, .gitLabDefault)
            } else {
                (.keepEverything, .notAsked)
            }
        let depth: Resolved<Int>? = try settings.resolve(
            "checkout.depth", parsedFlag: ("depth", flags.depth), environment: "GIT_DEPTH")
        // GitLab's GIT_DEPTH is a number of commits, 0 meaning the whole history
        // ("The value is passed to git fetch and git clone"; GitLab docs,
        // ci/runners/configure_runners.md, "Shallow cloning").
        if let depth, depth.value < 0 {
            throw KilnError.badConfiguration("checkout.depth (\(depth.source)): must be at least 0, got \(depth.value)")
        }
        // GIT_SUBMODULE_DEPTH "overwrites the GIT_DEPTH setting for the
        // submodules only" (GitLab docs, ci/runners/configure_runners.md, "Git
        // submodule depth"): unset, the submodules get GIT_DEPTH's value; a
        // depth above 0 is `git submodule update --init --depth N`, 0 the whole
        // history (gitlab-runner, shells/abstract.go, writeSubmoduleUpdateCmd).
        // gitlab-runner falls back to GIT_DEPTH on a value that is no number;
        // Kiln refuses it (78), as it does a bad GIT_DEPTH.
        let submoduleDepth: Resolved<Int>? = try settings.resolve(
            "checkout.submodule_depth", parsedFlag: ("submodule-depth", flags.submoduleDepth),
            environment: "GIT_SUBMODULE_DEPTH")
        if let submoduleDepth, submoduleDepth.value < 0 {
            throw KilnError.badConfiguration(
                """
                checkout.submodule_depth (\(submoduleDepth.source)): must be at least 0, got \(submoduleDepth.value)
                """)
        }
        let cache: Resolved<String>? = try settings.resolve(
            "checkout.cache_dir", parsedFlag: ("cache-dir", flags.cacheDirectory),
            environment: "KILN_CHECKOUT_CACHE_DIR")
        let timeout: Resolved<Seconds> = try settings.require(
            "checkout.timeout", flag: nil, environment: "KILN_GIT_TIMEOUT",
            default: Seconds(defaultNoProgressTimeout))
        guard timeout.value.value.isFinite, timeout.value.value > 0,
            timeout.value.value <= maximumNoProgressTimeout
        else {
            throw KilnError.badConfiguration(
                """
                \(timeout.source): checkout.timeout (the no-progress time of a transfer) must be more than 0 \
                and at most 24h, got \(timeout.value.value) seconds
                """)
        }
        let target = flags.target ?? job.projectDirectory ?? FileManager.default.currentDirectoryPath

        let server =
            job.serverURL
            ?? {
                var origin = URLComponents()
                origin.scheme = components.scheme
                origin.host = components.host
                origin.port = components.port
                return origin.string ?? ""
            }()
        var projectPath = components.path
        if projectPath.hasPrefix("/") { projectPath.removeFirst() }
        if projectPath.hasSuffix(".git") { projectPath.removeLast(4) }
        let project = job.projectID ?? job.projectPath ?? projectPath

        var request = CheckoutRequest(
            repositoryURL: cleanURL, credentials: credentials, commit: commit.lowercased(),
            ref: flags.ref ?? job.commitRefName, tag: flags.tag ?? job.commitTag,
            pipelineID: flags.pipelineID ?? job.pipelineID,
            target: (target as NSString).standardizingPath,
            artifactsDirectory: (artifactsDirectory as NSString).standardizingPath,
            strategy: strategy.value, submodules: submodules.value, clean: clean.flags,
            depth: (depth?.value ?? defaultDepth) == 0 ? .unlimited : .commits(depth?.value ?? defaultDepth),
            cacheDirectory: cache?.value, serverURL: server,
            project: project, cleanRequest: clean.request)
        request.noProgressTimeout = timeout.value.value
        let submoduleCommits = submoduleDepth?.value ?? depth?.value ?? defaultDepth
        request.submoduleDepth = submoduleCommits == 0 ? .unlimited : .commits(submoduleCommits)
        return request
    }
}
