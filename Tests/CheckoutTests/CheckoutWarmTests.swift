import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// A warm checkout into the folder Kiln checked out before touches only what
/// differs, and must leave exactly what git's `checkout -f` + `clean` would.
@Suite struct CheckoutWarmTests {
    /// Every path under `root` but `.git` and those `skipping`, with what git
    /// keeps of it: a file's bytes and executable bit, a link's target, a folder.
    func tree(_ root: String, skipping: Set<String> = []) throws -> [String: String] {
        var entries: [String: String] = [:]
        let fileManager = FileManager.default
        for path in try fileManager.subpathsOfDirectory(atPath: root).sorted() {
            if path == ".git" || path.hasPrefix(".git/")
                || skipping.contains(where: { path == $0 || path.hasPrefix($0 + "/") })
            {
                continue
            }
            let full = (root as NSString).appendingPathComponent(path)
            let attributes = try fileManager.attributesOfItem(atPath: full)
            switch attributes[.type] as? FileAttributeType {
            case .typeSymbolicLink?:
                entries[path] = "link " + (try fileManager.destinationOfSymbolicLink(atPath: full))
            case .typeDirectory?:
                entries[path] = "folder"
            default:
                let mode = (attributes[.posixPermissions] as? Int ?? 0) & 0o100 != 0 ? "755" : "644"
                entries[path] = "\(mode) " + (read(full) ?? "<unreadable>")
            }
        }
        return entries
    }

    @Test func warmCheckoutTouchesWhatChangedAndMatchesGitsCheckout() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        var files = [
            ".gitignore": "*.log\nbuild/\n", "a.txt": "a\n", "dir/b.txt": "b\n", "dir/sub/c.txt": "c\n",
            "run.sh": "#!/bin/sh\necho run\n", "gone/only.txt": "only\n", "keep/same.txt": "same\n",
        ]
        for index in 0..<50 { files["many/f\(index).txt"] = "\(index)\n" }
        let first = try fixture.commit(work, files, message: "First")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(server: server, project: project.path, commit: first)
            #expect(cold.exitCode == 0, "\(cold.output)")

            // What the job did after that checkout: a tracked file changed, one
            // removed, untracked and ignored files and folders.
            try "job's edit\n".write(toFile: project.file("a.txt"), atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: project.file("many/f7.txt"))
            try FileManager.default.createDirectory(atPath: project.file("tmp/deep"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: project.file("build"), withIntermediateDirectories: true)
            for path in ["untracked.txt", "tmp/deep/x.txt", "out.log", "build/o.bin", "dir/sub/untracked.txt"] {
                try "left\n".write(toFile: project.file(path), atomically: true, encoding: .utf8)
            }

            // The next commit: a change, an addition, a deletion that empties a
            // folder, a rename, a mode change, a symbolic link.
            try "b changed\n".write(toFile: "\(work)/dir/b.txt", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: "\(work)/new", withIntermediateDirectories: true)
            try "new\n".write(toFile: "\(work)/new/d.txt", atomically: true, encoding: .utf8)
            try fixture.git(["rm", "-q", "gone/only.txt"], in: work)
            try FileManager.default.createDirectory(atPath: "\(work)/moved", withIntermediateDirectories: true)
            try fixture.git(["mv", "dir/sub/c.txt", "moved/c.txt"], in: work)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(work)/run.sh")
            try FileManager.default.createSymbolicLink(atPath: "\(work)/link", withDestinationPath: "dir/b.txt")
            try fixture.git(["add", "-A"], in: work)
            try fixture.git(["commit", "-q", "-m", "Second"], in: work)
            let second = try fixture.git(["rev-parse", "HEAD"], in: work)
            try fixture.push(work)

            // -ffd: the untracked go, the ignored stay.
            let warm = try runCheckout(
                server: server, project: project.path, commit: second, extra: ["GIT_CLEAN_FLAGS": "-ffd"])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(warm.output.contains("checkout: 9 paths differ from \(first.prefix(8))"), "\(warm.output)")

            // git's own checkout of the same commit, in a clone of its own.
            let reference = TemporaryDirectory("kiln-git-reference")
            try fixture.git(
                ["clone", "-q", "--no-checkout", "\(fixture.served)/group/app.git", "."], in: reference.path)
            try fixture.git(["checkout", "-q", "-f", "--detach", second], in: reference.path)
            let kept = ["out.log", "build"]
            let warmTree = try tree(project.path, skipping: Set(kept + ["kiln"]))
            let gitTree = try tree(reference.path)
            let onlyKiln = warmTree.filter { gitTree[$0.key] != $0.value }
            let onlyGit = gitTree.filter { warmTree[$0.key] != $0.value }
            #expect(warmTree == gitTree, "Kiln's \(onlyKiln) against git's \(onlyGit)")
            #expect(read(project.file("out.log")) == "left\n", "ignored: kept by -ffd")
            #expect(read(project.file("build/o.bin")) == "left\n")
            let status = try fixture.git(["status", "--porcelain", "--ignored"], in: project.path)
            #expect(Set(status.split(separator: "\n")) == ["?? kiln/", "!! build/", "!! out.log"], "\(status)")

            // -ffdx (GitLab's default) also removes the ignored ones.
            let again = try runCheckout(server: server, project: project.path, commit: second)
            #expect(again.exitCode == 0, "\(again.output)")
            #expect(again.output.contains("checkout: 0 paths differ"), "\(again.output)")
            #expect(try tree(project.path, skipping: ["kiln"]) == tree(reference.path))
        }
    }
    /// Kiln skips libgit2's content filters when no attribute can turn one on (KilnGit's ContentFilters: each
    /// filter's attribute lookup costs a realpath(3) per file). Where attributes are set, in a folder's
    /// `.gitattributes` the index holds or in one the new commit adds, the files are written as git writes
    /// them: `eol=crlf` converted, `ident` expanded, in a clone and in a warm checkout.
    @Test func filesWithAttributesAreWrittenAsGitWritesThem() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let first = try fixture.commit(
            work,
            [
                "plain.txt": "plain\nlines\n", "sub/.gitattributes": "*.txt eol=crlf\n", "sub/deep/c.txt": "c\nd\n",
                "id.txt": "$Id$\n",
            ], message: "First")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        let reference = TemporaryDirectory("kiln-git-reference")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(server: server, project: project.path, commit: first)
            #expect(cold.exitCode == 0, "\(cold.output)")
            #expect(read(project.file("sub/deep/c.txt")) == "c\r\nd\r\n", "the folder's eol=crlf, in a clone")
            #expect(read(project.file("plain.txt")) == "plain\nlines\n")

            // A change under the folder whose attributes the index holds, and a new top .gitattributes.
            let second = try fixture.commit(
                work,
                [
                    "sub/deep/c.txt": "c\nd\ne\n", ".gitattributes": "plain.txt eol=crlf\nid.txt ident\n",
                    "plain.txt": "plain\nlines\nmore\n", "id.txt": "$Id$\nchanged\n",
                ], message: "Second")
            try fixture.push(work)
            let warm = try runCheckout(server: server, project: project.path, commit: second)
            #expect(warm.exitCode == 0, "\(warm.output)")
            // Only the 4 paths are checked out.
            #expect(warm.output.contains("4 paths differ from \(first.prefix(8))"), "\(warm.output)")

            try fixture.git(
                ["clone", "-q", "--no-checkout", "\(fixture.served)/group/app.git", "."], in: reference.path)
            try fixture.git(["checkout", "-q", "-f", "--detach", second], in: reference.path)
            #expect(read(reference.file("plain.txt")) == "plain\r\nlines\r\nmore\r\n", "the premise: git converts")
            #expect(read(reference.file("id.txt"))?.hasPrefix("$Id: ") == true, "the premise: git expands")
            #expect(try tree(project.path, skipping: ["kiln"]) == tree(reference.path))
        }
    }

    /// The phases checkout.json lists for a run (the walk's among them).
    func phases(_ run: CheckoutRun) -> Set<String> {
        Set((run.json["phases"] as? [String: Any] ?? [:]).keys)
    }

    /// Every warm checkout walks the work tree once (libgit2's status), and
    /// that walk finds anything a job did: a file at any depth, an ignored
    /// one, a tracked file edited in place with its mtime put back. Nothing is
    /// sealed any more (an earlier Kiln's `kiln-clean-seal` is removed): the
    /// seal's two passes over every tracked path cost 0.4-0.6 s on the
    /// benchmark's 15k files against the walk's 0.06-0.13 s they could save
    /// (issue 17, session 5). The cache is a `cache:` folder inside the
    /// project, as the checkout component has it.
    @Test func everyWarmCheckoutWalksOnceAndAJobsWritesAreCleaned() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        var files = [".gitignore": "*.log\n", "a.txt": "a\n", "dir/sub/c.txt": "c\n", "gone.txt": "gone\n"]
        for index in 0..<20 { files["many/f\(index).txt"] = "\(index)\n" }
        var commits = [try fixture.commit(work, files, message: "First")]
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        let cacheFolder = project.file(".kiln-git")
        let cache = ["--cache-dir", cacheFolder]
        let oldSeal = (cacheFolder as NSString).appendingPathComponent("kiln-clean-seal")
        /// A new commit on the server: a change, an addition, a removal.
        func nextCommit(_ number: Int) throws -> String {
            try "a \(number)\n".write(toFile: "\(work)/a.txt", atomically: true, encoding: .utf8)
            try "\(number)\n".write(toFile: "\(work)/dir/new\(number).txt", atomically: true, encoding: .utf8)
            if number == 1 { try fixture.git(["rm", "-q", "gone.txt"], in: work) }
            try fixture.git(["add", "-A"], in: work)
            try fixture.git(["commit", "-q", "-m", "Commit \(number)"], in: work)
            try fixture.push(work)
            return try fixture.git(["rev-parse", "HEAD"], in: work)
        }
        /// git's own checkout of `commit`, for comparison.
        func gitTree(_ commit: String) throws -> [String: String] {
            let reference = TemporaryDirectory("kiln-git-reference")
            try fixture.git(
                ["clone", "-q", "--no-checkout", "\(fixture.served)/group/app.git", "."], in: reference.path)
            try fixture.git(["checkout", "-q", "-f", "--detach", commit], in: reference.path)
            return try tree(reference.path)
        }
        try withGitServer(fixture) { server in
            let cold = try runCheckout(server: server, project: project.path, commit: commits[0], arguments: cache)
            #expect(cold.exitCode == 0, "\(cold.output)")
            #expect(!FileManager.default.fileExists(atPath: oldSeal), "nothing is sealed")

            // Nothing ran in the folder since: one walk finds nothing, only the commit's paths are written.
            commits.append(try nextCommit(1))
            let quiet = try runCheckout(server: server, project: project.path, commit: commits[1], arguments: cache)
            #expect(quiet.exitCode == 0, "\(quiet.output)")
            #expect(quiet.output.contains("3 paths differ from"), "\(quiet.output)")
            #expect(quiet.output.contains("(0 changed since)"), "\(quiet.output)")
            #expect(phases(quiet).contains("walk") && !phases(quiet).contains("seal"), "\(quiet.json)")
            #expect(try tree(project.path, skipping: ["kiln", ".kiln-git"]) == gitTree(commits[1]))

            // A job: an untracked file deep down, an ignored one, and a tracked
            // file edited in place to the same size with its mtime put back, as
            // `cp -p` or `tar x` leave it (the index's ctime still differs).
            // An earlier Kiln's seal is left too: it is Kiln's own, and removed.
            let edited = project.file("many/f3.txt")
            let mtime = try FileManager.default.attributesOfItem(atPath: edited)[.modificationDate] as! Date
            let handle = try #require(FileHandle(forWritingAtPath: edited))
            handle.write(Data("9\n".utf8))
            try handle.close()
            try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: edited)
            try "left\n".write(toFile: project.file("dir/sub/untracked.txt"), atomically: false, encoding: .utf8)
            try "left\n".write(toFile: project.file("out.log"), atomically: false, encoding: .utf8)
            try "an earlier Kiln's seal\n".write(toFile: oldSeal, atomically: false, encoding: .utf8)
            commits.append(try nextCommit(2))
            let walked = try runCheckout(server: server, project: project.path, commit: commits[2], arguments: cache)
            #expect(walked.exitCode == 0, "\(walked.output)")
            #expect(walked.output.contains("(1 changed since)"), "\(walked.output)")
            #expect(walked.output.contains("clean: removed 2 untracked paths"), "\(walked.output)")
            #expect(phases(walked).contains("walk"), "\(walked.json)")
            #expect(!FileManager.default.fileExists(atPath: oldSeal), "an earlier Kiln's seal is removed")
            #expect(try tree(project.path, skipping: ["kiln", ".kiln-git"]) == gitTree(commits[2]))

            // GIT_CLEAN_FLAGS that keep ignored files keep them; -e keeps what it names.
            try "left\n".write(toFile: project.file("out.log"), atomically: false, encoding: .utf8)
            let keeping = try runCheckout(
                server: server, project: project.path, commit: commits[2], extra: ["GIT_CLEAN_FLAGS": "-ffd"],
                arguments: cache)
            #expect(keeping.exitCode == 0, "\(keeping.output)")
            #expect(read(project.file("out.log")) == "left\n")
            try "mine\n".write(toFile: project.file("keep.txt"), atomically: false, encoding: .utf8)
            let excluding = ["GIT_CLEAN_FLAGS": "-ffdx -e keep.txt"]
            for _ in 0..<2 {
                let run = try runCheckout(
                    server: server, project: project.path, commit: commits[2], extra: excluding, arguments: cache)
                #expect(run.exitCode == 0, "\(run.output)")
                #expect(read(project.file("out.log")) == nil, "-x removes the ignored file")
                #expect(read(project.file("keep.txt")) == "mine\n")
            }
            let other = try runCheckout(server: server, project: project.path, commit: commits[2], arguments: cache)
            #expect(other.exitCode == 0, "\(other.output)")
            #expect(read(project.file("keep.txt")) == nil)
            #expect(try tree(project.path, skipping: ["kiln", ".kiln-git"]) == gitTree(commits[2]))
        }
    }

    /// The index's cached tree ("TREE" extension, gitformat-index(5), "Cache tree": a path, NUL, the entry
    /// count in ASCII, a space, the subtree count, a newline, then the tree's object name unless the count is
    /// -1), root entry first; nil when the index has none. Read after the 12-byte header and its entries.
    func cachedRootTree(index path: String, entries: Int) throws -> (count: Int, id: String)? {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // Version 2 entries: 62 bytes of stat data, id and flags, the path, then NUL padding to a multiple of 8.
        var offset = 12
        for _ in 0..<entries {
            var end = offset + 62
            while bytes[end] != 0 { end += 1 }
            offset += (end - offset + 8) / 8 * 8
        }
        while offset + 8 <= bytes.count - 20 {
            let signature = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
            let size = bytes[offset + 4..<offset + 8].reduce(0) { $0 << 8 | Int($1) }
            if signature == "TREE" {
                var cursor = offset + 8
                guard bytes[cursor] == 0 else { return nil }  // the root's path is empty
                cursor += 1
                var header = ""
                while bytes[cursor] != UInt8(ascii: "\n") {
                    header.append(Character(UnicodeScalar(bytes[cursor])))
                    cursor += 1
                }
                let count = Int(header.split(separator: " ")[0]) ?? -1
                let id = bytes[cursor + 1..<cursor + 21].map { String(format: "%02x", $0) }.joined()
                return (count, count < 0 ? "" : id)
            }
            offset += 8 + size
        }
        return nil
    }

    /// After its checkout Kiln leaves the index's cached tree valid, at the commit's tree: the next warm job
    /// asks whether the index still holds that tree (`indexMatches`), and without the cache libgit2 rebuilt
    /// every tree of the index to answer, a third of the warm job's CPU on the benchmark's 15k files (perf).
    @Test func theIndexKeepsItsCachedTreeAfterEveryCheckout() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let first = try fixture.commit(
            work, ["a.txt": "a\n", "dir/b.txt": "b\n", "dir/sub/c.txt": "c\n"], message: "First")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        let cache = project.file(".kiln-git")
        try withGitServer(fixture) { server in
            for (number, commit) in [first, try fixture.commit(work, ["dir/sub/c.txt": "c2\n"], message: "2")]
                .enumerated()
            {
                if number == 1 { try fixture.push(work) }
                let run = try runCheckout(
                    server: server, project: project.path, commit: commit, arguments: ["--cache-dir", cache])
                #expect(run.exitCode == 0, "\(run.output)")
                let tree = try fixture.git(["rev-parse", "\(commit)^{tree}"], in: work)
                let entries = try fixture.git(["ls-tree", "-r", "--name-only", commit], in: work)
                    .split(separator: "\n").count
                let cached = try cachedRootTree(
                    index: (cache as NSString).appendingPathComponent("index"), entries: entries)
                #expect(cached?.count == entries, "job \(number + 1): \(String(describing: cached))")
                #expect(cached?.id == tree, "job \(number + 1)")
            }
        }
    }
}
