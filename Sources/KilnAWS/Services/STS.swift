import Foundation
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
            let account = result.string("Account"), let arn = result.string("Arn")
        else {
            throw AWSMalformedResponse(service: "sts", action: "GetCallerIdentity", problem: "no Account and Arn")
        }
        return CallerIdentity(account: account, arn: arn, userID: result.string("UserId") ?? "")
    }

    /// AssumeRole with this client's credentials (the same call the
    /// profile provider makes, on the transport).
    public func assumeRole(roleARN: String, sessionName: String, durationSeconds: Int? = nil) throws -> AWSCredentials {
        try transport.assumeRole(
            roleARN: roleARN, sessionName: sessionName, durationSeconds: durationSeconds.map(String.init),
            signedWith: credentials.credentials())
    }
}

/// The two calls that make temporary credentials, made by the credential
/// providers before any chain exists: on the transport, signed with what
/// the provider has.
extension AWSTransport {
    /// AssumeRole, signed with `credentials` (a source profile's keys).
    func assumeRole(
        roleARN: String, sessionName: String, externalID: String? = nil, durationSeconds: String? = nil,
        signedWith credentials: AWSCredentials
    ) throws -> AWSCredentials {
        var parameters = QueryParameters()
        parameters.add("RoleArn", roleARN)
        parameters.add("RoleSessionName", roleSessionName(sessionName))
        parameters.add("ExternalId", externalID)
        parameters.add("DurationSeconds", durationSeconds)
        let answer = try query(.sts, "AssumeRole", parameters, mutation: .idempotent, signedWith: credentials)
        return try Self.temporaryCredentials(in: answer, action: "AssumeRole")
    }

    /// AssumeRoleWithWebIdentity: unsigned, the token is the proof.
    func assumeRoleWithWebIdentity(roleARN: String, sessionName: String, token: String) throws -> AWSCredentials {
        var parameters = QueryParameters()
        parameters.add("RoleArn", roleARN)
        parameters.add("RoleSessionName", roleSessionName(sessionName))
        parameters.add("WebIdentityToken", token)
        let answer = try query(.sts, "AssumeRoleWithWebIdentity", parameters, mutation: .idempotent, signedWith: nil)
        return try Self.temporaryCredentials(in: answer, action: "AssumeRoleWithWebIdentity")
    }

    /// The `Credentials` element of AssumeRole and AssumeRoleWithWebIdentity.
    static func temporaryCredentials(in answer: XMLElement, action: String) throws -> AWSCredentials {
        guard let element = answer.first(named: "Credentials"),
            let id = element.string("AccessKeyId"), let secret = element.string("SecretAccessKey")
        else {
            throw AWSMalformedResponse(service: "sts", action: action, problem: "no Credentials in the answer")
        }
        return AWSCredentials(
            accessKeyID: id, secretAccessKey: secret, sessionToken: element.string("SessionToken"),
            expiration: element.string("Expiration").flatMap(parseAWSDate))
    }
}
