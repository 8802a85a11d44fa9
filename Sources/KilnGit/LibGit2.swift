import CLibGit2
import KilnCore

/// libgit2, initialised once for the process (git_libgit2_init is reference
/// counted; Kiln never shuts it down, the process's end does).
public enum LibGit2 {
    private static let once: Void = {
        _ = git_libgit2_init()
        // Every connection through Kiln's socket stream: a no-progress deadline, cancellation.
        SocketStream.register()
        // Whole packs, not thin ones, from upload-pack (libgit2's indexer thickens them in quadratic time).
        WholePackTransport.register()
    }()

    public static func initialise() { _ = once }

    /// The linked library's version, e.g. "1.5.1".
    public static var version: String {
        initialise()
        var major: Int32 = 0, minor: Int32 = 0, revision: Int32 = 0
        git_libgit2_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }

    /// Whether this libgit2 fetches shallow and deepens (1.8 and later; Kiln
    /// also builds against Debian 12's 1.5, which fetches whole histories).
    public static var supportsShallow: Bool { CKiln_git_supports_shallow() == 1 }

    /// Whether this libgit2 was built with HTTPS support (Debian's is).
    public static var supportsHTTPS: Bool {
        initialise()
        return git_libgit2_features() & Int32(GIT_FEATURE_HTTPS.rawValue) != 0
    }
}
