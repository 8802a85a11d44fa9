import Foundation
import KilnCore

/// The user data's shape: one script, one cloud-config, or several parts.
public enum UserDataFormat: String, Sendable, Codable, SettingValue {
    case shell
    case cloudConfig = "cloud-config"
    case multipart

    public static var expected: String { "shell, cloud-config or multipart" }
    public init?(settingText: String) { self.init(rawValue: settingText) }
}

/// userdata-<env>.json: what was rendered for an environment, from what.
/// Written by kiln-userdata; read by kiln-rotate.
public struct UserDataResult: ArtifactPayload, Equatable {
    public static let schemaName = "userdata"
    public static let schemaVersion = 1

    public struct Variable: Codable, Sendable, Equatable {
        public var name: String
        public var source: String

        public init(name: String, source: String) {
            self.name = name
            self.source = source
        }
    }

    public var environment: String
    public var format: UserDataFormat
    public var gzip: Bool
    /// The rendered file, relative to the project folder.
    public var path: String
    public var size: Int
    public var sha256: String
    public var templates: [String]
    public var variables: [Variable]
    public var amiID: String

    public init(
        environment: String, format: UserDataFormat, gzip: Bool, path: String, size: Int, sha256: String,
        templates: [String], variables: [Variable], amiID: String
    ) {
        self.environment = environment
        self.format = format
        self.gzip = gzip
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.templates = templates
        self.variables = variables
        self.amiID = amiID
    }

    /// The file name of an environment's artifact.
    public static func fileName(environment: String) -> String { "userdata-\(environment).json" }
}
