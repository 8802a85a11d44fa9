import CLibGit2
import KilnCore

/// libgit2, initialised once for the process (git_libgit2_init is reference
/// counted; Kiln never shuts it down, the process's end does).
public enum LibGit2 {
    private static let once: Void = {
        _ = git_libgit2_init()
        // libgit2 maps packs in windows of 1 GiB, up to 8 GiB in all (git's 64-bit defaults for
        // core.packedGitWindowSize and core.packedGitLimit), and a page once read stays mapped and counts in
        // the job's memory: a checkout that reads trees and blobs all over a pack ends up with the whole pack
        // resident (12.5 of the warm job's 56 MB on the benchmark). Windows of 1 MiB, at most 4 MiB mapped,
        // took 8.5 to 10 MB off the peak of a clone and a warm fetch there, at the same time and CPU; at most
        // 2 MiB took 2.2 MiB more off the clone's (42.7 to 40.5 MiB, git's 20.7: 2.07x to 1.94x), its time
        // within the noise of 4 interleaved rounds (issue 17, session 5).
        _ = CKiln_git_set_pack_windows(1 << 20, 2 << 20)
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

    /// How much of a pack libgit2 maps at once, and in all (bytes).
    public static var packWindows: (window: Int, limit: Int) {
        initialise()
        var window = 0
        var limit = 0
        _ = CKiln_git_get_pack_windows(&window, &limit)
        return (window, limit)
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
