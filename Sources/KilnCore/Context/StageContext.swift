import Foundation

/// Everything a stage needs from the outside world but the network, made
/// once at the entry point from the process and passed down: the job's
/// environment, the log, the artifacts folder, the settings, the process
/// runner and the clock. Tests build their own (`StageContext.make`), so a
/// stage can run in the test's process. A stage that talks to the network
/// gets, beside this, the one HTTP client (KilnHTTP) or the one AWS
/// environment (KilnAWS); see docs/architecture.md, "The stage context".
public struct StageContext: Sendable {
    /// The executable's name (`kiln-build`): the artifacts' producer and the log's prefix.
    public let stage: String
    public let job: JobContext
    public let log: LogWriter
    public let artifacts: ArtifactStore
    public let settings: Settings
    public let runner: ProcessRunner
    public let clock: Clock
    /// The project folder: `CI_PROJECT_DIR`, else the folder Kiln was started in.
    public let projectDirectory: String

    public init(
        stage: String, job: JobContext, log: LogWriter, artifacts: ArtifactStore, settings: Settings,
        runner: ProcessRunner, clock: Clock = .system
    ) {
        self.stage = stage
        self.job = job
        self.log = log
        self.artifacts = artifacts
        self.settings = settings
        self.runner = runner
        self.clock = clock
        projectDirectory = job.projectDirectory ?? FileManager.default.currentDirectoryPath
    }

    /// The context the executables build: the log for this job (GitLab's
    /// sections inside a job, every known secret masked), the artifacts
    /// folder (`--artifacts-dir`, `KILN_ARTIFACTS_DIR`, `kiln/` in the
    /// project) and kiln.yml (`--config`, `KILN_CONFIG`, `kiln.yml` in the
    /// project). A bad kiln.yml throws (exit 78).
    public static func make(
        stage: String, job: JobContext, artifactsDirectory: String? = nil, configFile: String? = nil,
        sink: any LogSink = FileDescriptorSink.standardError, clock: Clock = .system,
        cancellation: Cancellation = .process
    ) throws -> StageContext {
        let log = job.makeLog(sink: sink, clock: clock)
        return try make(
            stage: stage, job: job, log: log, artifactsDirectory: artifactsDirectory, configFile: configFile,
            clock: clock,
            cancellation: cancellation)
    }

    /// As above, with a log already made (the entry point makes it first,
    /// so that a bad kiln.yml is reported through it).
    public static func make(
        stage: String, job: JobContext, log: LogWriter, artifactsDirectory: String? = nil, configFile: String? = nil,
        clock: Clock = .system, cancellation: Cancellation = .process
    ) throws -> StageContext {
        StageContext(
            stage: stage, job: job, log: log,
            artifacts: ArtifactStore(
                directory: ArtifactStore.directory(flag: artifactsDirectory, job: job), producer: Producer(name: stage),
                clock: clock),
            settings: Settings(job: job, file: try ConfigFile.load(flag: configFile, job: job)),
            runner: ProcessRunner(log: log, cancellation: cancellation),
            clock: clock)
    }
}
