import Foundation
import KilnCore
import KilnHTTP

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
struct EnvironmentCredentialProvider: CredentialProvider {
    let job: JobContext
    var name: String { "environment" }

    func resolve() throws -> ResolvedCredentials? {
        let id = job["AWS_ACCESS_KEY_ID"], secret = job["AWS_SECRET_ACCESS_KEY"]
        if id == nil && secret == nil { return nil }
        guard let id, let secret else {
            throw KilnError(.permissionDenied, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
        return ResolvedCredentials(
            credentials: AWSCredentials(
                accessKeyID: id, secretAccessKey: secret,
                sessionToken: job["AWS_SESSION_TOKEN"] ?? job["AWS_SECURITY_TOKEN"]),
            source: "environment (AWS_ACCESS_KEY_ID)")
    }
}

/// AWS's dates: ISO 8601, with or without fractional seconds.
func parseAWSDate(_ text: String) -> Date? {
    let plain = ISO8601DateFormatter()
    if let date = plain.date(from: text) { return date }
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return fractional.date(from: text)
}

/// A role name AWS accepts for `RoleSessionName`: `[\w+=,.@-]`, 2 to 64 characters.
func roleSessionName(_ raw: String) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-")
    var name = String(raw.map { allowed.contains($0) ? $0 : "-" }.prefix(64))
    while name.count < 2 { name += "-" }
    return name
}

/// Web identity: `AWS_ROLE_ARN` with a token from `AWS_WEB_IDENTITY_TOKEN_FILE`
/// or from the GitLab `id_tokens` variable named by `KILN_OIDC_TOKEN_VARIABLE`,
/// exchanged through STS AssumeRoleWithWebIdentity (an unsigned call).
struct WebIdentityCredentialProvider: CredentialProvider {
    let job: JobContext
    /// STS, unsigned by itself: each call is signed with what the provider has.
    let sts: AWSTransport
    var name: String { "web identity" }

    /// `AWS_ROLE_SESSION_NAME`, else one that names the project, pipeline and job.
    var sessionName: String {
        if let name = job["AWS_ROLE_SESSION_NAME"] { return roleSessionName(name) }
        let project = job.projectPath.map { $0.replacingOccurrences(of: "/", with: ".") } ?? "local"
        return roleSessionName("kiln-\(project)-p\(job.pipelineID ?? "0")-j\(job.jobID ?? "0")")
    }

    func resolve() throws -> ResolvedCredentials? {
        guard let roleARN = job["AWS_ROLE_ARN"] else { return nil }
        let token: String
        let tokenSource: String
        if let variable = job["KILN_OIDC_TOKEN_VARIABLE"] {
            guard let value = job[variable] else {
                throw KilnError(
                    .permissionDenied,
                    "KILN_OIDC_TOKEN_VARIABLE names \(variable), which is not set (is it under id_tokens: in the job?)")
            }
            token = value
            tokenSource = "$\(variable)"
        } else if let file = job["AWS_WEB_IDENTITY_TOKEN_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw KilnError(.permissionDenied, "AWS_WEB_IDENTITY_TOKEN_FILE \(file) cannot be read")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            tokenSource = file
        } else {
            return nil
        }
        return ResolvedCredentials(
            credentials: try sts.assumeRoleWithWebIdentity(roleARN: roleARN, sessionName: sessionName, token: token),
            source: "web identity (role \(roleARN), token from \(tokenSource), session \(sessionName))")
    }
}

/// The shared files: the profile's own keys, or `role_arn` assumed with the
/// keys of its `source_profile` (one level; AWS allows chains, Kiln follows
/// them up to five deep).
struct ProfileCredentialProvider: CredentialProvider {
    let files: SharedConfigFiles
    let profile: String
    /// AWS_PROFILE was set: a missing profile is then an error.
    let explicit: Bool
    /// STS, unsigned by itself: each call is signed with what the provider has.
    let sts: AWSTransport
    let job: JobContext
    var name: String { "shared files" }

    func resolve() throws -> ResolvedCredentials? {
        guard files.profile(profile) != nil else {
            if explicit {
                throw KilnError(
                    .permissionDenied,
                    "AWS_PROFILE \(profile): no such profile in \(files.credentialsPath) or \(files.configPath)")
            }
            return nil
        }
        return try resolve(profile, depth: 0)
    }

    private func resolve(_ name: String, depth: Int) throws -> ResolvedCredentials {
        guard depth < 5 else {
            throw KilnError(.badConfiguration, "profile \(name): source_profile chain is longer than 5")
        }
        guard let settings = files.profile(name) else {
            throw KilnError(
                .badConfiguration,
                "profile \(name) (a source_profile) is in neither \(files.credentialsPath) nor \(files.configPath)")
        }
        if let roleARN = settings["role_arn"] {
            guard let source = settings["source_profile"] else {
                throw KilnError(
                    .badConfiguration,
                    "profile \(name): role_arn needs source_profile (credential_source is not supported)")
            }
            let base = try source == name ? ownKeys(name, settings) : resolve(source, depth: depth + 1)
            let credentials = try sts.assumeRole(
                roleARN: roleARN, sessionName: settings["role_session_name"] ?? "kiln-\(job.pipelineID ?? "local")",
                externalID: settings["external_id"], durationSeconds: settings["duration_seconds"],
                signedWith: base.credentials)
            return ResolvedCredentials(
                credentials: credentials,
                source: "profile \(name) (role \(roleARN) through profile \(source))")
        }
        return try ownKeys(name, settings)
    }

    private func ownKeys(_ name: String, _ settings: [String: String]) throws -> ResolvedCredentials {
        guard let id = settings["aws_access_key_id"], let secret = settings["aws_secret_access_key"] else {
            throw KilnError(.permissionDenied, "profile \(name): no aws_access_key_id and aws_secret_access_key")
        }
        return ResolvedCredentials(
            credentials: AWSCredentials(
                accessKeyID: id, secretAccessKey: secret, sessionToken: settings["aws_session_token"]),
            source: "profile \(name) (\(files.credentialsPath))")
    }
}

/// The JSON both the ECS agent and instance metadata answer with.
func metadataCredentials(_ body: Data, source: String) throws -> AWSCredentials {
    guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
        let id = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String
    else {
        throw KilnError(.permissionDenied, "\(source): the answer holds no AccessKeyId and SecretAccessKey")
    }
    return AWSCredentials(
        accessKeyID: id, secretAccessKey: secret, sessionToken: object["Token"] as? String,
        expiration: (object["Expiration"] as? String).flatMap(parseAWSDate))
}

/// ECS (and other container) credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
/// on the ECS agent's address, or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN` (or `_FILE`) when given.
struct ContainerCredentialProvider: CredentialProvider {
    let job: JobContext
    let http: HTTPClient
    var name: String { "container" }

    func resolve() throws -> ResolvedCredentials? {
        let url: String
        if let relative = job["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] {
            url = "http://169.254.170.2" + relative
        } else if let full = job["AWS_CONTAINER_CREDENTIALS_FULL_URI"] {
            url = full
        } else {
            return nil
        }
        var headers: [(name: String, value: String)] = []
        if let token = job["AWS_CONTAINER_AUTHORIZATION_TOKEN"] {
            headers.append(("Authorization", token))
        } else if let file = job["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
            let token = try? String(contentsOfFile: file, encoding: .utf8)
        {
            headers.append(("Authorization", token.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let response = try http.send(HTTPRequest(url: url, headers: headers, connectTimeout: 2, timeout: 5))
        guard response.status == 200 else {
            throw KilnError(
                .permissionDenied, "container credentials: HTTP \(response.status) from \(HTTPError.redacted(url))")
        }
        return ResolvedCredentials(
            credentials: try metadataCredentials(response.body, source: "container credentials"),
            source: "container (\(HTTPError.redacted(url)))")
    }
}

/// EC2 instance metadata, version 2 only: a session token first (PUT), then
/// the role's credentials with it. Off with `AWS_EC2_METADATA_DISABLED=true`;
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it (tests point it at loopback).
struct InstanceMetadataCredentialProvider: CredentialProvider {
    let job: JobContext
    let http: HTTPClient
    var name: String { "instance metadata" }

    func resolve() throws -> ResolvedCredentials? {
        if job["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" { return nil }
        var endpoint = job["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? "http://169.254.169.254"
        if endpoint.hasSuffix("/") { endpoint.removeLast() }
        let tokenResponse: HTTPResponse
        do {
            tokenResponse = try http.send(
                HTTPRequest(
                    method: "PUT", url: "\(endpoint)/latest/api/token",
                    headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")], connectTimeout: 1, timeout: 2))
        } catch is HTTPError {
            return nil  // not on EC2: the chain has nothing more to offer
        }
        guard tokenResponse.status == 200 else { return nil }
        let token = tokenResponse.text
        let headers = [(name: "X-aws-ec2-metadata-token", value: token)]
        let roles = try http.send(
            HTTPRequest(
                url: "\(endpoint)/latest/meta-data/iam/security-credentials/", headers: headers, connectTimeout: 1,
                timeout: 2))
        guard roles.status == 200, let role = roles.text.split(whereSeparator: \.isNewline).first.map(String.init)
        else {
            throw KilnError(
                .permissionDenied, "instance metadata: this instance has no IAM role (HTTP \(roles.status))")
        }
        let answer = try http.send(
            HTTPRequest(
                url: "\(endpoint)/latest/meta-data/iam/security-credentials/\(role)", headers: headers,
                connectTimeout: 1, timeout: 2))
        guard answer.status == 200 else {
            throw KilnError(.permissionDenied, "instance metadata: HTTP \(answer.status) for role \(role)")
        }
        return ResolvedCredentials(
            credentials: try metadataCredentials(answer.body, source: "instance metadata"),
            source: "instance metadata (role \(role))")
    }
}
