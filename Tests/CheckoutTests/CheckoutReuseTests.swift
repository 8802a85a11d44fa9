import Foundation
import KilnCore
import KilnTestSupport
import Testing

@Suite struct CheckoutReuseTests {
    /// A project with one large file, so that a full clone and an
    /// incremental fetch differ clearly in bytes received.
    func largeProject(_ fixture: GitFixture) throws -> (work: String, first: String) {
        let work = try fixture.makeProject("group/app")
        let first = try fixture.commit(
            work, ["big.txt": randomText(bytes: 400_000, seed: 1), "a.txt": "1\n"], message: "Big")
        try fixture.push(work)
        return (work, first)
    }

    @Test func fetchReusesTheCloneAndReceivesOnlyWhatIsNew() throws {
        let fixture = try GitFixture()
        let (work, first) = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(server: server, project: project.path, commit: first)
            #expect(cold.exitCode == 0, "\(cold.output)")
            let coldBytes = cold.json["bytesReceived"] as? Int ?? 0
            #expect(coldBytes > 200_000)

            let second = try fixture.commit(work, ["a.txt": "2\n"], message: "Small change")
            try fixture.push(work)
            // Untracked and ignored leftovers of the last job; -ffdx removes them.
            try "junk\n".write(toFile: project.file("leftover.o"), atomically: true, encoding: .utf8)
            let warm = try runCheckout(server: server, project: project.path, commit: second)
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(warm.output.contains("reusing the repository"))
            let warmBytes = warm.json["bytesReceived"] as? Int ?? .max
            #expect(warmBytes < coldBytes / 20, "warm fetch received \(warmBytes) bytes, cold \(coldBytes)")
            #expect(read(project.file("a.txt")) == "2\n")
            #expect(!FileManager.default.fileExists(atPath: project.file("leftover.o")), "cleaned")
            #expect(warm.json["discardedCache"] == nil)
        }
    }

    @Test func staleIndexLockIsDiscardedAndClonedAgain() throws {
        let fixture = try GitFixture()
        let (_, first) = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            #expect(try runCheckout(server: server, project: project.path, commit: first).exitCode == 0)
            try "".write(toFile: project.file(".git/index.lock"), atomically: true, encoding: .utf8)
            let again = try runCheckout(server: server, project: project.path, commit: first)
            #expect(again.exitCode == 0, "\(again.output)")
            #expect((again.json["discardedCache"] as? String ?? "").contains("index.lock"))
            #expect(again.output.components(separatedBy: "discarding the repository").count == 2, "one line says why")
            #expect(!FileManager.default.fileExists(atPath: project.file(".git/index.lock")))
            #expect(read(project.file("a.txt")) == "1\n")
        }
    }

    @Test func corruptedObjectIsDiscardedAndClonedAgain() throws {
        let fixture = try GitFixture()
        let (work, first) = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            #expect(try runCheckout(server: server, project: project.path, commit: first).exitCode == 0)
            // Damage every pack the fetch stored, in the middle where the objects are.
            let packs = try FileManager.default.contentsOfDirectory(atPath: project.file(".git/objects/pack")).filter {
                $0.hasSuffix(".pack")
            }
            #expect(!packs.isEmpty)
            for pack in packs {
                let path = project.file(".git/objects/pack/\(pack)")
                try? FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
                var data = try Data(contentsOf: URL(fileURLWithPath: path))
                let middle = data.count / 2
                data.replaceSubrange(
                    middle..<min(data.count - 20, middle + 4096),
                    with: Data(repeating: 0x55, count: min(4096, data.count - 20 - middle)))
                try data.write(to: URL(fileURLWithPath: path))
            }
            try FileManager.default.removeItem(atPath: project.file("big.txt"))
            let second = try fixture.commit(work, ["a.txt": "2\n"], message: "After damage")
            try fixture.push(work)
            let again = try runCheckout(server: server, project: project.path, commit: second)
            #expect(again.exitCode == 0, "\(again.output)")
            let reason = again.json["discardedCache"] as? String ?? ""
            #expect(reason.hasPrefix("it failed"), "\(reason)")
            #expect(read(project.file("big.txt")) == randomText(bytes: 400_000, seed: 1))
        }
    }

    @Test func anotherRemoteIsDiscarded() throws {
        let fixture = try GitFixture()
        let (_, first) = try largeProject(fixture)
        let other = try fixture.makeProject("group/other")
        let otherCommit = try fixture.commit(other, ["o.txt": "other\n"], message: "Other")
        try fixture.push(other)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            #expect(try runCheckout(server: server, project: project.path, commit: first).exitCode == 0)
            let switched = try runCheckout(
                server: server, repository: "group/other", project: project.path, commit: otherCommit)
            #expect(switched.exitCode == 0, "\(switched.output)")
            #expect((switched.json["discardedCache"] as? String ?? "").contains("another remote"))
            #expect(read(project.file("o.txt")) == "other\n")
            #expect(!FileManager.default.fileExists(atPath: project.file("a.txt")))
        }
    }

    /// The cache as a GitLab `cache:` path inside the project folder: the
    /// clean after the checkout must not remove it.
    @Test func cacheInsideTheProjectSurvivesTheClean() throws {
        let fixture = try GitFixture()
        let (work, first) = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let cold = try runCheckout(
                server: server, project: project.path, commit: first,
                arguments: ["--cache-dir", project.file(".kiln-git")])
            #expect(cold.exitCode == 0, "\(cold.output)")
            let coldBytes = cold.json["bytesReceived"] as? Int ?? 0  // read now: the next run rewrites the file
            let second = try fixture.commit(work, ["a.txt": "2\n"], message: "Next")
            try fixture.push(work)
            let warm = try runCheckout(
                server: server, project: project.path, commit: second,
                arguments: ["--cache-dir", project.file(".kiln-git")])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect(warm.output.contains("reusing the repository"))
            #expect(FileManager.default.fileExists(atPath: project.file(".kiln-git/HEAD")))
            #expect(coldBytes > 200_000)
            #expect((warm.json["bytesReceived"] as? Int ?? .max) < coldBytes / 20)
        }
    }

    @Test func cacheFolderKeepsTheRepositoryBetweenJobs() throws {
        let fixture = try GitFixture()
        let (work, first) = try largeProject(fixture)
        let cache = TemporaryDirectory("kiln-cache")
        try withGitServer(fixture) { server in
            let firstJob = TemporaryDirectory("kiln-project")
            let cold = try runCheckout(
                server: server, project: firstJob.path, commit: first, arguments: ["--cache-dir", cache.file("repo")])
            #expect(cold.exitCode == 0, "\(cold.output)")
            #expect(read(firstJob.file("big.txt")) != nil)
            let second = try fixture.commit(work, ["a.txt": "2\n"], message: "Next")
            try fixture.push(work)
            // A new job folder (another runner's build dir), the same cache.
            let secondJob = TemporaryDirectory("kiln-project")
            let warm = try runCheckout(
                server: server, project: secondJob.path, commit: second, arguments: ["--cache-dir", cache.file("repo")])
            #expect(warm.exitCode == 0, "\(warm.output)")
            #expect((warm.json["bytesReceived"] as? Int ?? .max) < (cold.json["bytesReceived"] as? Int ?? 0) / 20)
            #expect(read(secondJob.file("a.txt")) == "2\n")
            #expect(read(secondJob.file("big.txt")) != nil)
        }
    }
}

@Suite struct CheckoutArchiveTests {
    @Test func archiveStrategyUnpacksTheCommitsFiles() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let older = try fixture.commit(work, ["a.txt": "old\n", "gone.txt": "x\n"], message: "Old")
        let head = try fixture.commit(work, ["a.txt": "new\n", "dir/b.txt": "b\n"], message: "New")
        try fixture.git(["rm", "-q", "gone.txt"], in: work)
        try fixture.git(["commit", "-q", "-m", "Remove gone"], in: work)
        let latest = try fixture.git(["rev-parse", "HEAD"], in: work)
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        try FileManager.default.createDirectory(atPath: project.file("kiln"), withIntermediateDirectories: true)
        try "keep\n".write(toFile: project.file("kiln/build.json"), atomically: true, encoding: .utf8)
        try withGitServer(fixture) { server in
            // An earlier archive checkout in the same folder is Kiln's own: replaced.
            let earlier = try runCheckout(
                server: server, project: project.path, commit: older,
                extra: ["KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url])
            #expect(earlier.exitCode == 0, "\(earlier.output)")
            #expect(read(project.file("gone.txt")) == "x\n")
            let run = try runCheckout(
                server: server, project: project.path, commit: latest,
                extra: ["KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url])
            #expect(run.exitCode == 0, "\(run.output)")
            #expect(read(project.file("a.txt")) == "new\n")
            #expect(read(project.file("dir/b.txt")) == "b\n")
            #expect(!FileManager.default.fileExists(atPath: project.file("gone.txt")))
            #expect(!FileManager.default.fileExists(atPath: project.file(".git")))
            #expect(read(project.file("kiln/build.json")) == "keep\n")
            #expect(run.json["strategy"] as? String == "archive")
            #expect(run.json["versionString"] as? String == String(latest.prefix(8)))
            #expect((run.json["bytesReceived"] as? Int ?? 0) > 0)
            #expect(!run.output.contains(token))

            let wrong = try runCheckout(
                server: server, project: project.path, commit: latest,
                extra: ["KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url], jobToken: "glcbt-not-it")
            #expect(wrong.exitCode == 77, "\(wrong.output)")
            let unknown = try runCheckout(
                server: server, project: project.path, commit: String(repeating: "cd", count: 20),
                extra: ["KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url])
            #expect(unknown.exitCode == 69, "\(unknown.output)")
            _ = head
        }
    }
}

@Suite struct CheckoutSubmoduleTests {
    /// app has a submodule `lib` (relative URL ../lib.git), which has a
    /// submodule `deep` (relative URL ../deep.git).
    func nested(_ fixture: GitFixture) throws -> (app: String, lib: String, deep: String) {
        let deepWork = try fixture.makeProject("group/deep")
        let deep = try fixture.commit(deepWork, ["deep.txt": "deep\n"], message: "Deep")
        try fixture.push(deepWork)
        let libWork = try fixture.makeProject("group/lib")
        _ = try fixture.commit(libWork, ["lib.txt": "lib\n"], message: "Lib")
        try fixture.git(["submodule", "add", "-q", "\(fixture.served)/group/deep.git", "deep"], in: libWork)
        try fixture.git(["config", "-f", ".gitmodules", "submodule.deep.url", "../deep.git"], in: libWork)
        try fixture.git(["add", ".gitmodules"], in: libWork)
        try fixture.git(["commit", "-q", "-m", "Add deep"], in: libWork)
        let lib = try fixture.git(["rev-parse", "HEAD"], in: libWork)
        try fixture.push(libWork)
        let appWork = try fixture.makeProject("group/app")
        _ = try fixture.commit(appWork, ["app.txt": "app\n"], message: "App")
        try fixture.git(["submodule", "add", "-q", "\(fixture.served)/group/lib.git", "lib"], in: appWork)
        try fixture.git(["config", "-f", ".gitmodules", "submodule.lib.url", "../lib.git"], in: appWork)
        try fixture.git(["add", ".gitmodules"], in: appWork)
        try fixture.git(["commit", "-q", "-m", "Add lib"], in: appWork)
        let app = try fixture.git(["rev-parse", "HEAD"], in: appWork)
        try fixture.push(appWork)
        return (app, lib, deep)
    }

    @Test func normalAndRecursiveSubmodulesWithRelativeURLs() throws {
        let fixture = try GitFixture()
        let (app, lib, deep) = try nested(fixture)
        try withGitServer(fixture) { server in
            let normal = TemporaryDirectory("kiln-project")
            let run = try runCheckout(
                server: server, project: normal.path, commit: app, extra: ["GIT_SUBMODULE_STRATEGY": "normal"])
            #expect(run.exitCode == 0, "\(run.output)")
            #expect(read(normal.file("lib/lib.txt")) == "lib\n")
            #expect(read(normal.file("lib/deep/deep.txt")) == nil, "normal does not recurse")
            let submodules = run.json["submodules"] as? [[String: Any]] ?? []
            #expect(submodules.map { $0["path"] as? String } == ["lib"])
            #expect(submodules.first?["commit"] as? String == lib)
            #expect(!run.output.contains(token))

            let recursive = TemporaryDirectory("kiln-project")
            let deepRun = try runCheckout(
                server: server, project: recursive.path, commit: app, extra: ["GIT_SUBMODULE_STRATEGY": "recursive"])
            #expect(deepRun.exitCode == 0, "\(deepRun.output)")
            #expect(read(recursive.file("lib/deep/deep.txt")) == "deep\n")
            let all = deepRun.json["submodules"] as? [[String: Any]] ?? []
            #expect(all.map { $0["path"] as? String } == ["lib", "lib/deep"])
            #expect(all.last?["commit"] as? String == deep)
            for config in [".git/config", ".git/modules/lib/config", ".git/modules/lib/modules/deep/config"] {
                #expect(!(read(recursive.file(config)) ?? "").contains(token), "\(config)")
            }
        }
    }
}
