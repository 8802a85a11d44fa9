import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// A cache shared by many jobs stays as fast as a new one: the refs of
/// earlier pipelines go, and the packs (one per fetch) are consolidated.
@Suite struct CheckoutCacheUpkeepTests {
    func packs(_ gitDirectory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(gitDirectory)/objects/pack")) ?? []).filter {
            $0.hasSuffix(".pack")
        }
    }

    /// A shell line (for git commands that read their standard input).
    func shell(_ fixture: GitFixture, _ script: String, in folder: String) throws {
        try fixture.runner.check(
            Command("sh", ["-c", script], workingDirectory: folder), what: "sh -c \(script)", failure: .internalError)
    }

    @Test func aCacheWith500PipelineRefsIsPrunedToTheCurrentOne() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let first = try fixture.commit(work, ["a.txt": "1\n"], message: "One")
        try fixture.push(work, ["main", "main:refs/pipelines/77"])
        let cache = TemporaryDirectory("kiln-cache")
        let repo = cache.file("repo")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(
                server: server, project: TemporaryDirectory("kiln-project").path, commit: first,
                arguments: ["--cache-dir", repo])
            #expect(cold.exitCode == 0, "\(cold.output)")
            // 500 earlier pipelines' refs, as many jobs' fetches would leave them.
            let lines = (1000..<1500).map { "create refs/pipelines/\($0) \(first)" }.joined(separator: "\n")
            let input = cache.file("refs.txt")
            try (lines + "\n").write(toFile: input, atomically: true, encoding: .utf8)
            try shell(fixture, "git --git-dir '\(repo)' update-ref --stdin < '\(input)'", in: cache.path)
            let second = try fixture.commit(work, ["a.txt": "2\n"], message: "Two")
            try fixture.push(work, ["main", "main:refs/pipelines/600"])
            let warm = try runCheckout(
                server: server, project: TemporaryDirectory("kiln-project").path, commit: second,
                extra: ["CI_PIPELINE_ID": "600"], arguments: ["--cache-dir", repo])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(warm.output.contains("removed 501 refs of earlier pipelines"), "\(warm.output)")
            let left = try fixture.git(
                ["--git-dir", repo, "for-each-ref", "--format=%(refname)", "refs/pipelines"], in: cache.path)
            #expect(left == "refs/pipelines/600")
            #expect(try fixture.git(["--git-dir", repo, "rev-parse", "refs/pipelines/600"], in: cache.path) == second)
        }
    }

    @Test func packsPastTheLimitAreWrittenIntoOne() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        _ = try fixture.commit(work, ["a.txt": "1\n", "dir/b.txt": "b\n"], message: "One")
        try fixture.git(["tag", "-a", "v1.0.0", "-m", "release 1"], in: work)
        let second = try fixture.commit(work, ["a.txt": "2\n"], message: "Two")
        try fixture.push(work, ["main", "--tags"])
        let cache = TemporaryDirectory("kiln-cache")
        let repo = cache.file("repo")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(
                server: server, project: TemporaryDirectory("kiln-project").path, commit: second,
                arguments: ["--cache-dir", repo])
            #expect(cold.exitCode == 0, "\(cold.output)")
            // 40 more packs, as 40 jobs' fetches would leave them, each of one blob.
            for index in 0..<40 {
                try shell(
                    fixture,
                    """
                    echo extra \(index) | git --git-dir '\(repo)' hash-object -w --stdin \
                    | git --git-dir '\(repo)' pack-objects -q '\(repo)/objects/pack/pack' >/dev/null
                    """, in: cache.path)
            }
            #expect(packs(repo).count > 40)
            let third = try fixture.commit(work, ["a.txt": "3\n"], message: "Three")
            try fixture.push(work)
            let project = TemporaryDirectory("kiln-project")
            let warm = try runCheckout(
                server: server, project: project.path, commit: third, arguments: ["--cache-dir", repo])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(warm.output.contains("packs written into one"), "\(warm.output)")
            #expect(packs(repo).count == 1)
            // Everything the refs reach is still there, the annotated tag object too.
            try fixture.git(["--git-dir", repo, "fsck", "--connectivity-only", "--no-dangling"], in: cache.path)
            #expect(try fixture.git(["--git-dir", repo, "cat-file", "-t", "v1.0.0"], in: cache.path) == "tag")
            #expect(
                warm.json["versionString"] as? String == (try fixture.git(["describe", "--tags"], in: project.path)))
            #expect(read(project.file("dir/b.txt")) == "b\n")
        }
    }
}
