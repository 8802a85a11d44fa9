import Foundation
import KilnCore

// Systems Manager Parameter Store (JSON 1.1, target prefix `AmazonSSM.`).

/// A Parameter Store parameter.
public struct SSMParameter: Sendable, Equatable {
    public let name: String
    public let value: String
    /// `String`, `StringList` or `SecureString`.
    public let type: String
    public let version: Int
}

extension AWSClient {
    /// GetParameter. A parameter that does not exist is an `AWSError` with
    /// code `ParameterNotFound`. SecureString values come back decrypted
    /// only `withDecryption`.
    public func getParameter(_ name: String, withDecryption: Bool = false) throws -> SSMParameter {
        let answer = try json(.ssm, target: "AmazonSSM.GetParameter", ["Name": name, "WithDecryption": withDecryption])
        func missing(_ field: String) -> AWSMalformedResponse {
            AWSMalformedResponse(service: "ssm", action: "GetParameter", problem: "no \(field)")
        }
        guard let parameter = answer["Parameter"] as? [String: Any] else { throw missing("Parameter") }
        guard let returnedName = parameter["Name"] as? String else { throw missing("Parameter.Name") }
        guard let value = parameter["Value"] as? String else { throw missing("Parameter.Value") }
        guard let type = parameter["Type"] as? String else { throw missing("Parameter.Type") }
        guard let version = Self.jsonInt(parameter["Version"]) else { throw missing("Parameter.Version") }
        return SSMParameter(name: returnedName, value: value, type: type, version: version)
    }

    /// PutParameter of type `String`; returns the parameter's new version.
    /// With `overwrite` the call lands the same however often it is sent;
    /// without, a second send would fail with `ParameterAlreadyExists`
    /// after the first succeeded, so it is sent once.
    @discardableResult
    public func putParameter(_ name: String, value: String, overwrite: Bool, description: String? = nil) throws -> Int {
        var body: [String: any Sendable] = ["Name": name, "Value": value, "Type": "String", "Overwrite": overwrite]
        if let description { body["Description"] = description }
        let answer = try json(.ssm, target: "AmazonSSM.PutParameter", body, mutation: overwrite ? .idempotent : .once)
        guard let version = Self.jsonInt(answer["Version"]) else {
            throw AWSMalformedResponse(service: "ssm", action: "PutParameter", problem: "no Version")
        }
        return version
    }

    /// A JSON number that is a whole number (JSONSerialization may give Int, Double or NSNumber).
    static func jsonInt(_ value: Any?) -> Int? {
        switch value {
        case let int as Int: return int
        case let double as Double: return Int(exactly: double)  // nil, not a trap, for 1e300 or a fraction
        case let number as NSNumber: return number.intValue
        default: return nil
        }
    }
}
