import Foundation
import KilnCore

/// How kiln-checkout obtains the work tree.
public enum CheckoutStrategy: String, Sendable, Codable, CaseIterable, SettingValue {
    /// A fresh repository every time.
    case clone
    /// Reuse the repository in the target folder or the cache folder; fetch what is new.
    case fetch
    /// Download the commit's files (no history) through GitLab's archive API.
    case archive

    public static var expected: String { "clone, fetch or archive" }
    public init?(settingText: String) { self.init(rawValue: settingText.lowercased()) }
}

/// checkout.json: what was checked out, how, and what it cost. Written by
/// kiln-checkout; read by kiln-build.
public struct CheckoutResult: ArtifactPayload, Equatable {
    public static let schemaName = "checkout"
    public static let schemaVersion = 1

    public struct Submodule: Codable, Sendable, Equatable {
        public var name: String
        public var path: String
        public var commit: String

        public init(name: String, path: String, commit: String) {
            self.name = name
            self.path = path
            self.commit = commit
        }
    }

    /// The repository URL, without credentials.
    public var repository: String
    public var commit: String
    public var shortCommit: String
    public var ref: String?
    public var tag: String?
    public var pipelineID: String?
    /// `v1.2.0-3-gabc1234` (nearest tag and distance) when history is
    /// there, the short commit otherwise. (`version` is the envelope's.)
    public var versionString: String
    public var commitTime: Date?
    public var subject: String?
    public var strategy: CheckoutStrategy
    public var submodules: [Submodule]
    public var bytesReceived: Int
    public var objectsReceived: Int
    /// Seconds each phase took (`prepare`, `fetch`, `checkout`, `clean`, `submodules`, `download`, `unpack`).
    public var phases: [String: Double]
    /// Why a reused repository was thrown away, if one was.
    public var discardedCache: String?

    public init(
        repository: String, commit: String, shortCommit: String, ref: String?, tag: String?, pipelineID: String?,
        versionString: String, commitTime: Date?, subject: String?, strategy: CheckoutStrategy, submodules: [Submodule],
        bytesReceived: Int, objectsReceived: Int, phases: [String: Double], discardedCache: String?
    ) {
        self.repository = repository
        self.commit = commit
        self.shortCommit = shortCommit
        self.ref = ref
        self.tag = tag
        self.pipelineID = pipelineID
        self.versionString = versionString
        self.commitTime = commitTime
        self.subject = subject
        self.strategy = strategy
        self.submodules = submodules
        self.bytesReceived = bytesReceived
        self.objectsReceived = objectsReceived
        self.phases = phases
        self.discardedCache = discardedCache
    }
}
