import ArgumentParser
import Foundation
import KilnAWS
import KilnCore
import KilnHTTP

/// The options every stage takes.
public struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("artifacts-dir"), help: ArgumentHelp(
        "Folder for the stages' JSON artifacts (default: $KILN_ARTIFACTS_DIR, else kiln/ in $CI_PROJECT_DIR).",
        valueName: "dir"))
    public var artifactsDirectory: String?

    @Option(name: .customLong("config"), help: ArgumentHelp(
        "Kiln's settings file (default: $KILN_CONFIG, else kiln.yml in the project folder).",
        valueName: "file"))
    public var configFile: String?

    @Flag(name: .customLong("check-aws"), help: ArgumentHelp(
        "Resolve AWS credentials and region, call STS GetCallerIdentity, print who Kiln acts as, and exit."))
    public var checkAWS = false

    public init() {}
}

/// Runs a stage's body with a context built from the process, and turns
/// whatever it throws into DESIGN.md's exit code, with one line saying why.
public enum StageMain {
    public static func run(
        stage: String, options: CommonOptions, _ body: (StageContext) throws -> Void
    ) throws {
        let job = JobContext.fromProcess()
        let log = job.makeLog()
        Cancellation.process.installSignalHandlers()
        do {
            let context = StageContext(
                stage: stage,
                job: job,
                log: log,
                artifacts: ArtifactStore(
                    directory: ArtifactStore.directory(flag: options.artifactsDirectory, job: job),
                    producer: Producer(name: stage)),
                settings: Settings(job: job, file: try ConfigFile.load(flag: options.configFile, job: job)),
                runner: ProcessRunner(log: log))
            if options.checkAWS {
                try checkAWS(context)
                return
            }
            try body(context)
        } catch {
            let code = KilnExit.for(error)
            log.error("\(stage): \(error)")
            if let status = KilnExit(rawValue: code), status != .success, status != .internalError {
                log.line("\(stage): exit \(code): \(status.meaning)")
            }
            throw ExitCode(code)
        }
    }
}

/// `--check-aws`: the way to try Kiln's AWS access by hand. Prints the
/// account, the ARN and where the credentials came from on stdout.
func checkAWS(_ context: StageContext) throws {
    let aws = try AWSEnvironment(job: context.job, http: HTTPClient(settings: HTTPSettings(job: context.job)))
    let chain = aws.credentialChain(secrets: context.log.secrets, log: nil)
    let resolved = try chain.resolved()
    let client = AWSClient(endpoints: aws.endpoints, credentials: chain, http: aws.http, retry: try aws.retryPolicy(), log: context.log)
    let identity = try client.getCallerIdentity()
    print("""
        account: \(identity.account)
        arn: \(identity.arn)
        credentials: \(resolved.source)
        region: \(aws.region)
        sts endpoint: \(aws.endpoints.url(for: .sts))
        """)
}
