import Foundation


/// Everything a stage needs from the outside world, made once at the entry
/// point and passed down: the job's environment, the log, the artifacts
/// folder, the settings and the process runner. Tests build their own.
public struct StageContext: Sendable {
    public let stage: String
    public let job: JobContext
    public let log: LogWriter
    public let artifacts: ArtifactStore
    public let settings: Settings
    public let runner: ProcessRunner

    public init(stage: String, job: JobContext, log: LogWriter, artifacts: ArtifactStore, settings: Settings, runner: ProcessRunner) {
        self.stage = stage
        self.job = job
        self.log = log
        self.artifacts = artifacts
        self.settings = settings
        self.runner = runner
    }
}
