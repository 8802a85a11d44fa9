import Foundation

/// The GitLab job Kiln runs in: the predefined variables (`CI_*`, `GIT_*`),
/// read once at the entry point and passed down. Outside GitLab (a person
/// re-running a stage by hand) most of them are absent and flags fill in.
public struct JobContext: Sendable, Equatable {
    /// The whole environment as the process received it. Read it only through
    /// a `JobContext` or `Settings`, never through `getenv`, so that tests can
    /// give a stage any environment they like.
    public let environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    public static func fromProcess() -> JobContext {
        JobContext(environment: ProcessInfo.processInfo.environment)
    }

    public subscript(name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// True inside a GitLab job (`GITLAB_CI=true`); decides the log style.
    public var isGitLab: Bool { self["GITLAB_CI"] == "true" }
    public var isCI: Bool { self["CI"] == "true" || isGitLab }

    public var projectDirectory: String? { self["CI_PROJECT_DIR"] }
    public var projectPath: String? { self["CI_PROJECT_PATH"] }
    public var projectID: String? { self["CI_PROJECT_ID"] }
    public var serverURL: String? { self["CI_SERVER_URL"] }
    public var repositoryURL: String? { self["CI_REPOSITORY_URL"] }
    public var commitSHA: String? { self["CI_COMMIT_SHA"] }
    public var commitRefName: String? { self["CI_COMMIT_REF_NAME"] }
    public var commitTag: String? { self["CI_COMMIT_TAG"] }
    public var pipelineID: String? { self["CI_PIPELINE_ID"] }
    public var pipelineSource: String? { self["CI_PIPELINE_SOURCE"] }
    public var jobID: String? { self["CI_JOB_ID"] }
    public var jobName: String? { self["CI_JOB_NAME"] }
    public var jobToken: String? { self["CI_JOB_TOKEN"] }
    public var environmentName: String? { self["CI_ENVIRONMENT_NAME"] }
    public var gitStrategy: String? { self["GIT_STRATEGY"] }
    public var gitSubmoduleStrategy: String? { self["GIT_SUBMODULE_STRATEGY"] }
    public var gitCleanFlags: String? { self["GIT_CLEAN_FLAGS"] }
    public var gitDepth: String? { self["GIT_DEPTH"] }

    /// Names of variables whose values are always secret. The web identity
    /// token may also sit in a variable named by `KILN_OIDC_TOKEN_VARIABLE`
    /// (a GitLab `id_tokens` entry) or in a file; both are added here.
    public static let secretVariableNames = [
        "CI_JOB_TOKEN", "CI_REGISTRY_PASSWORD", "CI_DEPLOY_PASSWORD", "CI_BUILD_TOKEN",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ]

    /// Every secret value this job knows from its environment.
    public var secretValues: [String] {
        var values = Self.secretVariableNames.compactMap { self[$0] }
        if let name = self["KILN_OIDC_TOKEN_VARIABLE"], let token = self[name] {
            values.append(token)
        }
        if let file = self["AWS_WEB_IDENTITY_TOKEN_FILE"],
            let token = try? String(contentsOfFile: file, encoding: .utf8)
        {
            values.append(token.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // A job token embedded in the repository URL (https://gitlab-ci-token:TOKEN@host/...).
        if let url = repositoryURL.flatMap(URLComponents.init(string:)), let password = url.password {
            values.append(password)
        }
        return values.filter { !$0.isEmpty }
    }

    /// The environment for a tool Kiln runs for itself (Packer and its
    /// plugins, tar, gzip, `sh -n`): the job's, without any variable that
    /// holds a secret, by name (`CI_JOB_TOKEN`, the AWS secret and session
    /// token, the OIDC token variable and `GITLAB_OIDC_TOKEN`) or by value
    /// (`CI_REPOSITORY_URL` holds the job token; any variable equal to or
    /// holding a masked value). The project's own build commands get the
    /// job's whole environment instead, as GitLab gives it.
    public func environmentForTools(masking secrets: SecretMask) -> [String: String] {
        var names = Set(Self.secretVariableNames + ["GITLAB_OIDC_TOKEN", "KILN_OIDC_TOKEN"])
        if let variable = self["KILN_OIDC_TOKEN_VARIABLE"] { names.insert(variable) }
        return environment.filter { name, value in
            !names.contains(name) && !secrets.contains(secretIn: value)
        }
    }

    /// The log writer this job should use: GitLab's sections inside a job,
    /// plain headings by hand, and every known secret masked.
    public func makeLog(sink: any LogSink = FileDescriptorSink.standardError, clock: Clock = .system) -> LogWriter {
        LogWriter(sink: sink, style: isGitLab ? .gitlab : .plain, secrets: SecretMask(secretValues), clock: clock)
    }
}
