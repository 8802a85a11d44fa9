import KilnCore

/// STS: who Kiln is acting as.
public struct CallerIdentity: Sendable, Equatable {
    public let account: String
    public let arn: String
    public let userID: String
}

extension AWSClient {
    public func getCallerIdentity() throws -> CallerIdentity {
        let answer = try query(.sts, "GetCallerIdentity")
        guard let result = answer.first(named: "GetCallerIdentityResult"),
              let account = result.string("Account"), let arn = result.string("Arn") else {
            throw AWSMalformedResponse(service: "sts", action: "GetCallerIdentity", problem: "no Account and Arn")
        }
        return CallerIdentity(account: account, arn: arn, userID: result.string("UserId") ?? "")
    }

    /// AssumeRole with this client's credentials; the result is temporary credentials.
    public func assumeRole(roleARN: String, sessionName: String, durationSeconds: Int? = nil) throws -> AWSCredentials {
        var parameters = QueryParameters()
        parameters.add("RoleArn", roleARN)
        parameters.add("RoleSessionName", roleSessionName(sessionName))
        parameters.add("DurationSeconds", durationSeconds)
        return try STSAccess.credentials(in: query(.sts, "AssumeRole", parameters, mutation: .idempotent), action: "AssumeRole")
    }

    /// AssumeRoleWithWebIdentity (unsigned: the token is the proof).
    public func assumeRoleWithWebIdentity(roleARN: String, sessionName: String, token: String) throws -> AWSCredentials {
        var parameters = QueryParameters()
        parameters.add("RoleArn", roleARN)
        parameters.add("RoleSessionName", roleSessionName(sessionName))
        parameters.add("WebIdentityToken", token)
        let answer = try AWSClient.query(
            .sts, "AssumeRoleWithWebIdentity", parameters, mutation: .idempotent, signedWith: nil, region: region,
            endpoint: endpoints.url(for: .sts), http: http, retry: retry, keys: keys, calls: calls, log: log, now: now)
        return try STSAccess.credentials(in: answer, action: "AssumeRoleWithWebIdentity")
    }
}
