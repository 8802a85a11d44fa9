import ArgumentParser
import Foundation
import KilnCore
import KilnHTTP

/// The options every stage takes.
public struct CommonOptions: ParsableArguments {
    @Option(
        name: .customLong("artifacts-dir"),
        help: ArgumentHelp(
            "Folder for the stages' JSON artifacts (default: $KILN_ARTIFACTS_DIR, else kiln/ in $CI_PROJECT_DIR).",
            valueName: "dir"))
    public var artifactsDirectory: String?

    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "Kiln's settings file (default: $KILN_CONFIG, else kiln.yml in the project folder).",
            valueName: "file"))
    public var configFile: String?

    public init() {}
}

/// A stage's command line: its options, and the work it does with the
/// context built from the process. `run()` builds the context, calls
/// `run(in:http:)`, and turns whatever it throws into the exit code of
/// docs/architecture.md ("Exit codes"), with one line saying why.
///
/// Which transports a stage uses shows in the protocol its command adopts:
/// `OfflineStageCommand` (no network), `StageCommand` (HTTP),
/// `AWSStageCommand` (KilnAWSCLI: AWS, and `--check-aws`).
public protocol StageCommand: ParsableCommand {
    /// The executable's name (`kiln-build`).
    static var stage: String { get }
    var common: CommonOptions { get }
    func run(in context: StageContext, http: HTTPClient) throws
}

extension StageCommand {
    public func run() throws {
        try StageMain.run(stage: Self.stage, options: common) { context in
            try run(in: context, http: HTTPClient(settings: HTTPSettings(job: context.job)))
        }
    }
}

/// A stage that talks to nothing on the network (build, user data).
public protocol OfflineStageCommand: StageCommand {
    func run(in context: StageContext) throws
}

extension OfflineStageCommand {
    public func run(in context: StageContext, http _: HTTPClient) throws { try run(in: context) }
}

/// The one place an executable's work meets the exit codes.
public enum StageMain {
    public static func run(stage: String, options: CommonOptions, _ body: (StageContext) throws -> Void) throws {
        let job = JobContext.fromProcess()
        let log = job.makeLog()
        Cancellation.process.installSignalHandlers()
        do {
            let context = try StageContext.make(
                stage: stage, job: job, log: log, artifactsDirectory: options.artifactsDirectory,
                configFile: options.configFile)
            try body(context)
        } catch {
            let code = KilnExit.for(error)
            log.error("\(stage): \(KilnExit.describe(error))")
            if let status = KilnExit(rawValue: code), status != .success, status != .internalError {
                log.line("\(stage): exit \(code): \(status.meaning)")
            }
            throw ExitCode(code)
        }
    }
}
