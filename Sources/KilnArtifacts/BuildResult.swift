import Foundation
import KilnCore

/// Test counts, from the test cases themselves (a report's own totals are
/// not trusted: some tools leave them out or get them wrong).
public struct TestCounts: Codable, Sendable, Equatable {
    public var tests = 0
    public var failures = 0
    public var errors = 0
    public var skipped = 0

    public init(tests: Int = 0, failures: Int = 0, errors: Int = 0, skipped: Int = 0) {
        self.tests = tests
        self.failures = failures
        self.errors = errors
        self.skipped = skipped
    }

    public var passed: Int { tests - failures - errors - skipped }

    public var summary: String {
        "\(tests) tests: \(passed) passed, \(failures) failed, \(errors) errors, \(skipped) skipped"
    }
}

/// The application artifact: where it is, how big, its SHA-256.
public struct ApplicationArtifact: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Packed by Kiln from `build.package.paths`.
        case tarGz = "tar.gz"
        /// `build.package.file`, taken as the build made it.
        case file
    }

    /// Relative to the project folder (it lies in the artifacts folder, so
    /// GitLab hands it to the bake job).
    public var path: String
    public var size: Int
    public var sha256: String
    public var kind: Kind

    public init(path: String, size: Int, sha256: String, kind: Kind) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.kind = kind
    }
}

/// build.json: what was built and tested, and the artifact for the bake.
/// Written by kiln-build; read by kiln-bake.
public struct BuildResult: ArtifactPayload, Equatable {
    public static let schemaName = "build"
    public static let schemaVersion = 1

    public enum Outcome: String, Codable, Sendable {
        /// Built, tested and packed: `artifact` is there.
        case passed
        /// A build or test command failed; nothing was packed.
        case failed
    }

    public enum Phase: String, Codable, Sendable {
        case build, test
    }

    public struct CommandRun: Codable, Sendable, Equatable {
        public var name: String
        public var command: String
        public var phase: Phase
        public var durationSeconds: Double
        /// `exit 0`, `exit 2`, `signal 9 (SIGKILL)`, `timed out`.
        public var status: String
        public var succeeded: Bool

        public init(
            name: String, command: String, phase: Phase, durationSeconds: Double, status: String, succeeded: Bool
        ) {
            self.name = name
            self.command = command
            self.phase = phase
            self.durationSeconds = durationSeconds
            self.status = status
            self.succeeded = succeeded
        }
    }

    public struct TestReport: Codable, Sendable, Equatable {
        public var counts: TestCounts
        public var reports: [String]
        /// The merged report, for `artifacts:reports:junit`.
        public var merged: String

        public init(counts: TestCounts, reports: [String], merged: String) {
            self.counts = counts
            self.reports = reports
            self.merged = merged
        }
    }

    public var application: String
    /// The application's version (`version` is the envelope's).
    public var applicationVersion: String
    public var commit: String
    public var outcome: Outcome
    public var artifact: ApplicationArtifact?
    public var tests: TestReport?
    public var commands: [CommandRun]

    public init(
        application: String, applicationVersion: String, commit: String, outcome: Outcome,
        artifact: ApplicationArtifact?, tests: TestReport?, commands: [CommandRun]
    ) {
        self.application = application
        self.applicationVersion = applicationVersion
        self.commit = commit
        self.outcome = outcome
        self.artifact = artifact
        self.tests = tests
        self.commands = commands
    }
}
