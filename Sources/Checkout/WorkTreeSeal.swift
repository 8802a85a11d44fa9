import Foundation
import KilnCore

/// Proof that nothing has changed in a work tree since Kiln's own checkout
/// and clean finished there, so that the next warm checkout may skip its walk
/// of the work tree (and the clean that walk feeds) and check out only what
/// the new commit changes.
///
/// What a job may do between two checkouts is anything: edit a tracked file in
/// place (its folder does not change), create, remove or rename files at any
/// depth, restore old mtimes (`touch -d`, `tar x`, `cp -p`), run git. The seal
/// therefore records, for every tracked path and every folder holding one (the
/// work tree's root too), the inode's device, number, type, size and *ctime*,
/// which a process cannot set: every write, chmod, link, rename into or out of
/// a folder moves it to the current time (stat(2), "st_ctime"). A new file
/// anywhere changes its folder's ctime; a new folder changes its parent's. The
/// index and HEAD are checked apart (WorkTreeRecord, `indexMatches`).
///
/// It is kept narrow where the stamps alone cannot be trusted:
/// - only a clean that removes every untracked and ignored path (`-d` and
///   `-x`, gitlab-runner's default `-ffdx`), or none at all: with ignored files
///   kept, what is ignored depends on rules outside the work tree
///   (`.git/info/exclude`, `core.excludesFile`) that the stamps do not cover;
/// - the same clean flags and spared folders as the seal's;
/// - a local filesystem only (ext2/3/4, XFS, Btrfs, tmpfs, overlayfs): a
///   network filesystem stamps ctime with the server's clock, so the wait
///   below cannot order a later write after the stamps;
/// - timestamps finer than a second (a stamp with nanoseconds), and the seal is
///   written only once the filesystem's clock has passed the newest stamp
///   (git's "racy git" problem, Documentation/technical/racy-git.txt): a write
///   in the same clock tick as Kiln's last one would otherwise keep its ctime.
/// The seal is removed before every checkout starts, so a killed run leaves none.
struct WorkTreeSeal: Equatable {
    static let file = "kiln-clean-seal"
    let workdir: String
    let commit: String
    let clean: String
    let spared: [String]
    /// SHA-256 over every sealed path's stamp.
    let stamps: String

    static func path(_ gitDirectory: String) -> String { (gitDirectory as NSString).appendingPathComponent(file) }

    /// Whether a clean with these flags leaves nothing the stamps do not cover.
    static func covers(_ flags: CleanFlags) -> Bool {
        !flags.enabled || (flags.directories && flags.ignored && !flags.onlyIgnored)
    }

    /// The seal of `workdir` as it is now, or the reason there can be none.
    static func take(
        workdir: String, commit: String, clean: CleanFlags, spared: [String], tracked: [String]
    ) -> Result<WorkTreeSeal, Refusal> {
        guard covers(clean) else {
            return .failure(Refusal("GIT_CLEAN_FLAGS \(clean.text) keeps ignored or untracked folders"))
        }
        guard let filesystem = LocalFilesystem(of: workdir) else {
            return .failure(Refusal("\(workdir) is not on a local filesystem whose ctime Kiln can order"))
        }
        var newest = timespec(tv_sec: 0, tv_nsec: 0)
        var sub = false
        guard
            let stamps = digest(
                workdir: workdir, tracked: tracked,
                each: { stamp in
                    if (stamp.tv_sec, stamp.tv_nsec) > (newest.tv_sec, newest.tv_nsec) { newest = stamp }
                    if stamp.tv_nsec != 0 { sub = true }
                })
        else { return .failure(Refusal("a tracked path of \(workdir) cannot be read")) }
        guard sub else {
            return .failure(Refusal("\(workdir)'s filesystem (\(filesystem)) keeps whole seconds only"))
        }
        // Until the filesystem's clock (the kernel's coarse real-time clock,
        // which stamps inodes; current_time() in fs/inode.c) has passed the
        // newest stamp, a write now could get that same ctime. At most one tick.
        var now = timespec()
        while clock_gettime(CLOCK_REALTIME_COARSE, &now) == 0,
            (now.tv_sec, now.tv_nsec) <= (newest.tv_sec, newest.tv_nsec)
        {
            usleep(1000)
        }
        return .success(
            WorkTreeSeal(workdir: workdir, commit: commit, clean: clean.text, spared: spared, stamps: stamps))
    }

    struct Refusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Whether the work tree is still exactly as sealed, for a checkout with
    /// these flags and spared folders: every stamp is the same.
    func holds(clean flags: CleanFlags, spared: [String], tracked: [String]) -> Bool {
        guard Self.covers(flags), flags.text == clean, spared == self.spared, LocalFilesystem(of: workdir) != nil
        else { return false }
        return Self.digest(workdir: workdir, tracked: tracked, each: { _ in }) == stamps
    }

    /// The stamps of the tracked paths and of the folders holding them, in
    /// a fixed order, hashed; nil when one cannot be read (removed, say).
    private static func digest(workdir: String, tracked: [String], each: (timespec) -> Void) -> String? {
        var folders: Set<String> = [""]
        for path in tracked {
            var folder = (path as NSString).deletingLastPathComponent
            while !folder.isEmpty, folders.insert(folder).inserted {
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        var hash = SHA256Digest()
        for path in folders.sorted() + tracked {
            var status = stat()
            let full = path.isEmpty ? workdir : (workdir as NSString).appendingPathComponent(path)
            guard lstat(full, &status) == 0 else { return nil }
            each(status.st_ctim)
            let line = """
                \(path)\t\(status.st_dev) \(status.st_ino) \(status.st_mode) \(status.st_size) \
                \(status.st_ctim.tv_sec).\(status.st_ctim.tv_nsec)\n
                """
            hash.update(Data(line.utf8))
        }
        return hash.finalizeHex()
    }

    // MARK: the file

    static func read(_ gitDirectory: String) -> WorkTreeSeal? {
        guard let text = try? String(contentsOfFile: path(gitDirectory), encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 5, lines[1].count == 40, lines[4].count == 64 else { return nil }
        let spared = lines[3].isEmpty ? [] : lines[3].split(separator: "\t").map(String.init)
        return WorkTreeSeal(workdir: lines[0], commit: lines[1], clean: lines[2], spared: spared, stamps: lines[4])
    }

    static func remove(_ gitDirectory: String) { _ = unlink(path(gitDirectory)) }

    func write(_ gitDirectory: String) throws {
        try KilnMark.write(
            Self.path(gitDirectory),
            "\(workdir)\n\(commit)\n\(clean)\n\(spared.joined(separator: "\t"))\n\(stamps)\n")
    }
}
