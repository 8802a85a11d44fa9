import Foundation
import KilnArtifacts
import KilnCore

/// The flags of `kiln-build`.
public struct BuildFlags: Sendable {
    /// `--release-version`: the application's version, over the tag's or the checkout's.
    public var releaseVersion: String?
    public init(releaseVersion: String? = nil) { self.releaseVersion = releaseVersion }
}

/// kiln-build: runs the project's build and test commands, reports the
/// tests to GitLab, and packs the one artifact the bake installs.
public struct BuildStage {
    public let context: StageContext
    public let flags: BuildFlags

    public init(context: StageContext, flags: BuildFlags = BuildFlags()) {
        self.context = context
        self.flags = flags
    }

    var projectDirectory: String { context.projectDirectory }

    @discardableResult
    public func run() throws -> BuildResult {
        let checkout = try context.artifacts.read(CheckoutResult.self).payload
        let configuration = try BuildConfiguration.load(context.settings)
        // A tag pipeline builds the tag's version; otherwise the checkout's.
        let version = flags.releaseVersion ?? context.job.commitTag ?? checkout.versionString
        // Checked before anything runs or is written: the version goes into
        // build.env, the package's name and the image's tags.
        guard Identifier.isVersion(version) else {
            let source =
                flags.releaseVersion != nil
                ? "--release-version" : context.job.commitTag != nil ? "CI_COMMIT_TAG" : "checkout.json"
            throw KilnError(
                flags.releaseVersion != nil ? .usage : .badConfiguration,
                "\(source): \(Untrusted.quoted(version)) is not a version Kiln can carry"
                    + " (1 to 128 letters, digits, . _ + - / @, starting with a letter or digit);"
                    + " nothing was built or written"
            )
        }
        let log = context.log
        log.line("build: \(configuration.application) \(version) at \(checkout.shortCommit)")

        var runs: [BuildResult.CommandRun] = []
        var environment = context.job.environment
        environment["KILN_VERSION"] = version
        environment["KILN_COMMIT"] = checkout.commit
        environment["KILN_APPLICATION"] = configuration.application

        var result = BuildResult(
            application: configuration.application, applicationVersion: version, commit: checkout.commit,
            outcome: .failed, artifact: nil, tests: nil, commands: [])

        // Build commands: the first failure ends the stage.
        for command in configuration.commands {
            let run = try execute(command, phase: .build, environment: environment)
            runs.append(run)
            guard run.succeeded else {
                result.commands = runs
                try write(result)
                throw KilnError(
                    .projectFailed,
                    "build command '\(command.name)' (\(command.location)) \(run.status): \(command.run)")
            }
        }
        // Test commands: a failure still lets the reports be collected.
        var failedTest: (ProjectCommand, BuildResult.CommandRun)?
        for command in configuration.tests where failedTest == nil {
            let run = try execute(command, phase: .test, environment: environment)
            runs.append(run)
            if !run.succeeded { failedTest = (command, run) }
        }
        result.commands = runs
        if !configuration.junit.isEmpty {
            do {
                result.tests = try collectReports(configuration.junit)
            } catch {
                try write(result)
                throw error
            }
        }
        if let (command, run) = failedTest {
            try write(result)
            throw KilnError(
                .projectFailed, "test command '\(command.name)' (\(command.location)) \(run.status): \(command.run)")
        }

        let artifactName = "\(Self.fileSafe(configuration.application))-\(Self.fileSafe(version)).tar.gz"
        let time = Int(context.job["SOURCE_DATE_EPOCH"] ?? "") ?? Int(checkout.commitTime?.timeIntervalSince1970 ?? 0)
        result.artifact = try log.section("kiln_package", title: "Packaging \(configuration.application) \(version)") {
            try Packager(
                runner: context.runner, projectDirectory: projectDirectory,
                artifactsDirectory: context.artifacts.directory,
                environment: context.job.environmentForTools(masking: log.secrets)
            )
            .package(configuration.package, name: artifactName, time: time, location: configuration.location)
        }
        result.outcome = .passed
        try write(result)
        if let artifact = result.artifact {
            log.line("artifact: \(artifact.path), \(artifact.size) bytes, sha256 \(artifact.sha256)")
        }
        return result
    }

    private func execute(
        _ command: ProjectCommand, phase: BuildResult.Phase, environment: [String: String]
    ) throws -> BuildResult.CommandRun {
        var environment = environment
        environment.merge(command.environment) { $1 }
        let result = try context.log.section("\(phase.rawValue)_\(command.name)", title: "$ \(command.run)") {
            try context.runner.run(
                .shell(command.run, environment: environment, workingDirectory: projectDirectory),
                timeout: command.timeout?.value)
        }
        let status: String =
            result.timedOut
            ? "timed out after \(LogWriter.formatDuration(command.timeout?.value ?? 0)) and was stopped"
            : result.termination.succeeded ? "exit 0" : "failed with \(result.termination)"
        context.log.line("\(command.name): \(status) in \(LogWriter.formatDuration(result.duration))")
        return .init(
            name: command.name, command: command.run, phase: phase,
            durationSeconds: (result.duration * 1000).rounded() / 1000,
            status: status, succeeded: result.termination.succeeded && !result.timedOut)
    }

    private func collectReports(_ globs: [String]) throws -> BuildResult.TestReport {
        let (files, suites, counts) = try JUnitReports.collect(globs: globs, in: projectDirectory)
        let merged = context.artifacts.path("junit.xml")
        try AtomicFile.write(Data(JUnitReports.merged(suites, counts: counts).utf8), to: merged)
        context.log.line("tests: \(counts.summary) (\(files.count) report\(files.count == 1 ? "" : "s"))")
        let relative =
            merged.hasPrefix(projectDirectory + "/") ? String(merged.dropFirst(projectDirectory.count + 1)) : merged
        return .init(counts: counts, reports: files, merged: relative)
    }

    private func write(_ result: BuildResult) throws {
        var dotenv = Dotenv()
        dotenv.set("KILN_VERSION", result.applicationVersion)
        if let artifact = result.artifact {
            dotenv.set("KILN_ARTIFACT", artifact.path)
            dotenv.set("KILN_ARTIFACT_SHA256", artifact.sha256)
        }
        try context.artifacts.write(result, dotenv: dotenv, dotenvFileName: "build.env")
    }

    /// A name safe in a file name: letters, digits, `.`, `_`, `-`, `+`.
    static func fileSafe(_ text: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
        return String(text.map { allowed.contains($0) ? $0 : "_" })
    }
}
