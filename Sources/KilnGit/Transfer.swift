import CLibGit2
import Foundation
import KilnCore

/// User name and password for one host (GitLab: `gitlab-ci-token` and the
/// job token). They are given to libgit2 through its credential callback
/// only, and only for URLs on `host`: they never enter a URL or the config.
public struct GitCredentials: Sendable {
    public let username: String
    public let password: String
    /// `host` or `host:port`; credentials are offered to no other.
    public let host: String

    public init(username: String, password: String, host: String) {
        self.username = username
        self.password = password
        self.host = host
    }

    func applies(to url: String) -> Bool {
        guard let components = URLComponents(string: url), let urlHost = components.host else { return false }
        let hostPort = components.port.map { "\(urlHost):\($0)" } ?? urlHost
        return hostPort.lowercased() == host.lowercased() || urlHost.lowercased() == host.lowercased()
    }
}

/// How a transfer is going (libgit2's indexer progress).
public struct TransferProgress: Sendable, Equatable {
    public var totalObjects = 0
    public var receivedObjects = 0
    public var indexedObjects = 0
    public var localObjects = 0
    public var receivedBytes = 0

    public init() {}

    init(_ stats: git_indexer_progress) {
        totalObjects = Int(stats.total_objects)
        receivedObjects = Int(stats.received_objects)
        indexedObjects = Int(stats.indexed_objects)
        localObjects = Int(stats.local_objects)
        receivedBytes = Int(stats.received_bytes)
    }
}

/// What the C callbacks of one fetch reach through their payload pointer.
final class TransferCallbacks {
    let credentials: GitCredentials?
    let progress: (TransferProgress) -> Void
    var offered = 0
    var refused = false
    var last = TransferProgress()

    init(credentials: GitCredentials?, progress: @escaping (TransferProgress) -> Void) {
        self.credentials = credentials
        self.progress = progress
    }

    /// Fills libgit2's callbacks (credentials and transfer progress) with
    /// this object as payload. The caller keeps `self` alive for the transfer.
    func install(into callbacks: inout git_remote_callbacks) {
        callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
        callbacks.credentials = { out, url, _, allowed, payload in
            let this = Unmanaged<TransferCallbacks>.fromOpaque(payload!).takeUnretainedValue()
            guard let credentials = this.credentials, let url,
                this.credentials?.applies(to: String(cString: url)) == true,
                allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0
            else {
                return GIT_PASSTHROUGH.rawValue  // nothing to offer: libgit2 reports the 401
            }
            // libgit2 asks again after a refusal; asking twice means the token is wrong.
            guard this.offered == 0 else {
                this.refused = true
                return GIT_EAUTH.rawValue
            }
            this.offered += 1
            return git_credential_userpass_plaintext_new(out, credentials.username, credentials.password)
        }
        callbacks.transfer_progress = { stats, payload in
            let this = Unmanaged<TransferCallbacks>.fromOpaque(payload!).takeUnretainedValue()
            if let stats {
                this.last = TransferProgress(stats.pointee)
                this.progress(this.last)
            }
            return 0
        }
    }
}
