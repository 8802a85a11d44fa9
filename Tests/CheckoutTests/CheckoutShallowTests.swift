import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// `GIT_DEPTH` as gitlab-runner means it (GitLab docs, "Shallow cloning":
/// the number of commits fetched; 0 for the whole history; 20 by default).
@Suite struct CheckoutShallowTests {
    /// `count` commits on main, each changing `f.txt` to its number; returns them oldest first.
    func history(_ fixture: GitFixture, _ work: String, count: Int, from start: Int = 1) throws -> [String] {
        try (start..<(start + count)).map { index in
            try fixture.commit(work, ["f.txt": "\(index)\n"], message: "Commit \(index)")
        }
    }

    func commitsIn(_ fixture: GitFixture, _ folder: String) throws -> Int {
        Int(try fixture.git(["rev-list", "--count", "HEAD"], in: folder)) ?? -1
    }

    @Test func cloneAtDepth20CutsTheHistoryKeepsHeadAndChecksOutSubmodules() throws {
        let fixture = try GitFixture()
        let libWork = try fixture.makeProject("group/lib")
        let lib = try fixture.commit(libWork, ["lib.txt": "lib\n"], message: "Lib")
        try fixture.push(libWork)
        let work = try fixture.makeProject("group/app")
        var commits = try history(fixture, work, count: 30)
        try fixture.git(["tag", "-a", "v1.0.0", "-m", "release 1", commits[24]], in: work)
        try fixture.git(["tag", "v0.1.0", commits[2]], in: work)  // below the cut: not fetched
        try fixture.git(["submodule", "add", "-q", "\(fixture.served)/group/lib.git", "lib"], in: work)
        try fixture.git(["config", "-f", ".gitmodules", "submodule.lib.url", "../lib.git"], in: work)
        try fixture.git(["add", ".gitmodules"], in: work)
        try fixture.git(["commit", "-q", "-m", "Add lib"], in: work)
        commits.append(try fixture.git(["rev-parse", "HEAD"], in: work))
        try fixture.push(work, ["main", "--tags"])
        try withGitServer(fixture) { server in
            for (depth, expected) in [("20", 20), (nil, 20), ("0", 31)] {
                let project = TemporaryDirectory("kiln-project")
                let run = try runCheckout(
                    server: server, project: project.path, commit: commits.last!,
                    extra: ["KILN_GIT_STRATEGY": "clone", "GIT_SUBMODULE_STRATEGY": "normal"].merging(
                        depth.map { ["GIT_DEPTH": $0] } ?? [:]
                    ) { $1 })
                #expect(run.exitCode == 0, "\(run.output)")
                #expect(try commitsIn(fixture, project.path) == expected, "GIT_DEPTH=\(depth ?? "unset")")
                #expect(
                    FileManager.default.fileExists(atPath: project.file(".git/shallow")) == (expected == 20),
                    "GIT_DEPTH=\(depth ?? "unset")")
                #expect(try fixture.git(["rev-parse", "HEAD"], in: project.path) == commits.last!)
                let status = try fixture.git(["status", "--porcelain"], in: project.path)
                #expect(status == "?? kiln/", "\(status)")
                #expect(read(project.file("f.txt")) == "30\n")
                #expect(read(project.file("lib/lib.txt")) == "lib\n", "the submodule is checked out")
                #expect((run.json["submodules"] as? [[String: Any]])?.first?["commit"] as? String == lib)
                // What git itself says of the same history: the tag inside it,
                // and v0.1.0 only when the whole history came.
                let described = try fixture.git(["describe", "--tags"], in: project.path)
                #expect(run.json["versionString"] as? String == described)
                #expect(described.hasPrefix("v1.0.0-6-g"), "\(described)")
                #expect(!run.output.contains("not honoured"))
            }
        }
    }

    /// `GIT_SUBMODULE_DEPTH` "overwrites the GIT_DEPTH setting for the
    /// submodules only" (GitLab docs, "Git submodule depth"); unset, the
    /// submodules get GIT_DEPTH's; 0 is the whole history. A recorded commit
    /// older than the submodule branch's last N commits is fetched itself, at
    /// depth N, as `git submodule update --depth N` does.
    @Test func submodulesAreCutAtGitSubmoduleDepthElseAtGitDepth() throws {
        let fixture = try GitFixture()
        let libWork = try fixture.makeProject("group/lib")
        let lib = try (1...10).map { try fixture.commit(libWork, ["lib.txt": "\($0)\n"], message: "Lib \($0)") }
        try fixture.push(libWork)
        let work = try fixture.makeProject("group/app")
        _ = try history(fixture, work, count: 5)
        try fixture.git(["submodule", "add", "-q", "\(fixture.served)/group/lib.git", "lib"], in: work)
        try fixture.git(["config", "-f", ".gitmodules", "submodule.lib.url", "../lib.git"], in: work)
        let atTip = try fixture.commit(work, ["app.txt": "tip\n"], message: "Lib at its tip")
        try fixture.push(work, ["main"])
        try fixture.git(["checkout", "-q", lib[4]], in: "\(work)/lib")
        try fixture.git(["add", "lib"], in: work)
        try fixture.git(["commit", "-q", "-m", "Lib at 5"], in: work)
        let atFive = try fixture.git(["rev-parse", "HEAD"], in: work)
        try withGitServer(fixture) { server in
            let cases: [(variables: [String: String], commit: String, app: Int, lib: Int, at: Int)] = [
                (["GIT_SUBMODULE_DEPTH": "3"], atTip, 6, 3, 10),
                (["GIT_DEPTH": "2"], atTip, 2, 2, 10),
                (["GIT_DEPTH": "1", "GIT_SUBMODULE_DEPTH": "0"], atTip, 1, 10, 10),
                ([:], atTip, 6, 10, 10),  // both default to 20: more than either has
                (["GIT_SUBMODULE_DEPTH": "3"], atFive, 7, 3, 5),
            ]
            for (variables, commit, appCommits, libCommits, at) in cases {
                if commit == atFive { try fixture.push(work, ["main"]) }
                let project = TemporaryDirectory("kiln-project")
                let run = try runCheckout(
                    server: server, project: project.path, commit: commit,
                    extra: ["KILN_GIT_STRATEGY": "clone", "GIT_SUBMODULE_STRATEGY": "normal"].merging(variables) {
                        $1
                    })
                #expect(run.exitCode == 0, "\(variables): \(run.output)")
                #expect(try commitsIn(fixture, project.path) == appCommits, "\(variables): \(run.output)")
                #expect(try commitsIn(fixture, project.file("lib")) == libCommits, "\(variables)")
                #expect(try fixture.git(["rev-parse", "HEAD"], in: project.file("lib")) == lib[at - 1])
                #expect(read(project.file("lib/lib.txt")) == "\(at)\n", "\(variables)")
                let shallow = FileManager.default.fileExists(atPath: project.file(".git/modules/lib/shallow"))
                #expect(shallow == (libCommits < 10), "\(variables): the submodule's history is cut")
            }
            let project = TemporaryDirectory("kiln-project")
            let bad = try runCheckout(
                server: server, project: project.path, commit: atTip,
                extra: ["GIT_SUBMODULE_STRATEGY": "normal", "GIT_SUBMODULE_DEPTH": "-1"])
            #expect(bad.exitCode == 78, "\(bad.output)")
            #expect(bad.output.contains("GIT_SUBMODULE_DEPTH"), "\(bad.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: project.path).isEmpty, "nothing written")
        }
    }

    @Test func aCacheIsDeepenedOnlyWhenThePipelinesCommitIsOlderThanItsHistory() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let commits = try history(fixture, work, count: 40)
        try fixture.push(work)
        let cache = TemporaryDirectory("kiln-cache")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(
                server: server, project: TemporaryDirectory("kiln-project").path, commit: commits.last!,
                arguments: ["--cache-dir", cache.file("repo")])
            #expect(cold.exitCode == 0, "\(cold.output)")
            #expect(Int(try fixture.git(["rev-list", "--count", "HEAD"], in: cache.file("repo"))) == 20)

            // A pipeline for commit 5, 35 commits below main: older than the
            // cache's history, it comes with its ref (the server sends what is
            // below the cache's shallow boundary).
            try fixture.push(work, ["\(commits[4]):refs/pipelines/78"])
            let older = TemporaryDirectory("kiln-project")
            let old = try runCheckout(
                server: server, project: older.path, commit: commits[4], extra: ["CI_PIPELINE_ID": "78"],
                arguments: ["--cache-dir", cache.file("repo")])
            #expect(old.exitCode == 0, "\(old.output)")
            #expect(read(older.file("f.txt")) == "5\n")
            #expect(try fixture.git(["rev-parse", "HEAD"], in: older.path) == commits[4])
            #expect(try commitsIn(fixture, older.path) == 5, "commits 1 to 5, all within GIT_DEPTH of it")

            // A commit no fetched ref reaches (a branch deleted since), forked
            // below the cache's history: asked for by id, deepened to GIT_DEPTH.
            try fixture.git(["checkout", "-q", "-b", "gone", commits[9]], in: work)
            let orphan = try fixture.commit(work, ["f.txt": "gone\n"], message: "On a deleted branch")
            try fixture.push(work, ["gone:refs/hidden/gone"])
            try fixture.git(["checkout", "-q", "main"], in: work)
            let byID = TemporaryDirectory("kiln-project")
            let deepened = try runCheckout(
                server: server, project: byID.path, commit: orphan, extra: ["CI_PIPELINE_ID": "79"],
                arguments: ["--cache-dir", cache.file("repo")])
            #expect(deepened.exitCode == 0, "\(deepened.output)")
            #expect(
                deepened.output.contains("asking for it by id, deepening the shallow repository"), "\(deepened.output)")
            #expect(read(byID.file("f.txt")) == "gone\n")
            #expect(try commitsIn(fixture, byID.path) == 11, "commits 1 to 10 and its own")

            // A newer commit on main: what is new is fetched, nothing deepened.
            let newer = try history(fixture, work, count: 3, from: 41)
            try fixture.push(work)
            let next = TemporaryDirectory("kiln-project")
            let warm = try runCheckout(
                server: server, project: next.path, commit: newer.last!, arguments: ["--cache-dir", cache.file("repo")])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(!warm.output.contains("deepening"), "\(warm.output)")
            #expect(read(next.file("f.txt")) == "43\n")
            let count = try commitsIn(fixture, next.path)
            #expect(count == 23, "the 20 of the first job and the 3 new ones, not \(count): \(warm.output)")
            #expect(FileManager.default.fileExists(atPath: cache.file("repo/shallow")))
        }
    }
}
