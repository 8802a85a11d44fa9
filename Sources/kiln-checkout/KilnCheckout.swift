import ArgumentParser
import Checkout
import KilnArtifacts
import KilnCLI
import KilnCore
import KilnHTTP

@main
struct KilnCheckout: StageCommand {
    static let stage = "kiln-checkout"
    static let configuration = CommandConfiguration(
        commandName: stage,
        abstract: "Check out the pipeline's commit with libgit2 and write checkout.json.",
        discussion: """
            Every value defaults to GitLab's predefined variables, so a job with GIT_STRATEGY: none needs no flags.
            The job token (CI_JOB_TOKEN, or one inside CI_REPOSITORY_URL) is given to git through a credential
            callback only: it never enters .git/config, a printed URL or checkout.json.
            """,
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("repository-url"), help: "Repository to fetch (default: $CI_REPOSITORY_URL).")
    var repositoryURL: String?
    @Option(help: "Commit to check out, 40 hex digits (default: $CI_COMMIT_SHA).")
    var commit: String?
    @Option(help: "Branch the commit is on (default: $CI_COMMIT_REF_NAME).")
    var ref: String?
    @Option(help: "Tag the pipeline is for (default: $CI_COMMIT_TAG).")
    var tag: String?
    @Option(
        name: .customLong("pipeline-id"),
        help: "Pipeline whose refs/pipelines/<id> to fetch (default: $CI_PIPELINE_ID).")
    var pipelineID: String?
    @Option(help: "Folder to check out into (default: $CI_PROJECT_DIR).")
    var target: String?
    @Option(
        help: "clone, fetch or archive (default: $KILN_GIT_STRATEGY, else clone/fetch from $GIT_STRATEGY, else fetch).")
    var strategy: CheckoutStrategy?
    @Option(help: "none, normal or recursive (default: $GIT_SUBMODULE_STRATEGY, else none).")
    var submodules: SubmoduleStrategy?
    @Option(
        name: .customLong("clean-flags"),
        help: "git clean flags after checkout (default: $GIT_CLEAN_FLAGS, else -ffdx; none to keep all).")
    var cleanFlags: CleanFlags?
    @Option(help: "Commits of history a new repository receives ($GIT_DEPTH, else 20; 0 for all).")
    var depth: Int?
    @Option(
        name: .customLong("submodule-depth"),
        help: "Commits of history a new submodule receives ($GIT_SUBMODULE_DEPTH, else the depth; 0 for all).")
    var submoduleDepth: Int?
    @Option(
        name: .customLong("cache-dir"),
        help: "Keep the repository here between jobs (a GitLab cache: path) for the fetch strategy.")
    var cacheDirectory: String?

    func run(in context: StageContext, http: HTTPClient) throws {
        var flags = CheckoutFlags()
        flags.repositoryURL = repositoryURL
        flags.commit = commit
        flags.ref = ref
        flags.tag = tag
        flags.pipelineID = pipelineID
        flags.target = target
        flags.strategy = strategy
        flags.submodules = submodules
        flags.cleanFlags = cleanFlags
        flags.depth = depth
        flags.submoduleDepth = submoduleDepth
        flags.cacheDirectory = cacheDirectory
        try CheckoutStage(context: context, http: http, flags: flags).run()
    }
}

extension CheckoutStrategy: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
extension SubmoduleStrategy: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
extension CleanFlags: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
