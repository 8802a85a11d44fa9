import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// The folder a checkout writes into is the person's until Kiln made it:
/// a file of theirs is refused by every strategy (exit 78) and never removed,
/// and by hand (no GITLAB_CI) nothing is cleaned unless clean flags are given.
@Suite struct CheckoutOwnershipTests {
    func project(_ fixture: GitFixture) throws -> String {
        let work = try fixture.makeProject("group/app")
        let head = try fixture.commit(work, ["a.txt": "a\n"], message: "Only")
        try fixture.push(work)
        return head
    }

    @Test(arguments: ["fetch", "clone", "archive"])
    func everyStrategyRefusesAFolderHoldingAPersonsFile(strategy: String) throws {
        let fixture = try GitFixture()
        let head = try project(fixture)
        let folder = TemporaryDirectory("kiln-project")
        try "keep\n".write(toFile: folder.file("precious.txt"), atomically: true, encoding: .utf8)
        try withGitServer(fixture) { server in
            let run = try runCheckout(
                server: server, project: folder.path, commit: head,
                extra: ["KILN_GIT_STRATEGY": strategy, "CI_SERVER_URL": server.url])
            #expect(run.exitCode == 78, "\(run.output)")
            #expect(run.output.contains(folder.path), "names the folder")
            #expect(run.output.contains("precious.txt"), "names what is in it")
            #expect(read(folder.file("precious.txt")) == "keep\n", "nothing removed")
            #expect(!FileManager.default.fileExists(atPath: folder.file("a.txt")), "nothing written")
            #expect(!FileManager.default.fileExists(atPath: folder.file(".git")))
        }
    }

    /// A person's own clone of the same repository is not Kiln's: fetch
    /// does not reuse, clean or replace it.
    @Test func aPersonsOwnCloneIsRefused() throws {
        let fixture = try GitFixture()
        let head = try project(fixture)
        let folder = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            try fixture.git(["init", "-q"], in: folder.path)
            try fixture.git(["remote", "add", "origin", "\(server.url)/group/app.git"], in: folder.path)
            try "draft\n".write(toFile: folder.file("draft.txt"), atomically: true, encoding: .utf8)
            let run = try runCheckout(server: server, project: folder.path, commit: head)
            #expect(run.exitCode == 78, "\(run.output)")
            #expect(run.output.contains(".git"))
            #expect(read(folder.file("draft.txt")) == "draft\n")
            #expect(!FileManager.default.fileExists(atPath: folder.file("a.txt")))
        }
    }

    /// A cache folder that holds something Kiln did not make is not emptied.
    @Test func aForeignCacheFolderIsRefused() throws {
        let fixture = try GitFixture()
        let head = try project(fixture)
        let folder = TemporaryDirectory("kiln-project")
        let cache = TemporaryDirectory("kiln-cache")
        try "mine\n".write(toFile: cache.file("notes.txt"), atomically: true, encoding: .utf8)
        try withGitServer(fixture) { server in
            let run = try runCheckout(
                server: server, project: folder.path, commit: head, arguments: ["--cache-dir", cache.path])
            #expect(run.exitCode == 78, "\(run.output)")
            #expect(run.output.contains(cache.path))
            #expect(run.output.contains("notes.txt"))
            #expect(read(cache.file("notes.txt")) == "mine\n")
        }
    }

    /// In a GitLab job a repository Kiln made is reused and cleaned (-ffdx);
    /// by hand the same folder keeps its untracked files unless clean flags
    /// are given, and the log says which.
    @Test func byHandNothingIsCleanedUnlessAsked() throws {
        let fixture = try GitFixture()
        let head = try project(fixture)
        let folder = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let job = try runCheckout(server: server, project: folder.path, commit: head)
            #expect(job.exitCode == 0, "\(job.output)")
            #expect(FileManager.default.fileExists(atPath: folder.file(".git/kiln-checkout")), "marked as Kiln's")
            try "junk\n".write(toFile: folder.file("leftover.o"), atomically: true, encoding: .utf8)
            let again = try runCheckout(server: server, project: folder.path, commit: head)
            #expect(again.exitCode == 0, "\(again.output)")
            #expect(again.output.contains("reusing the repository"))
            #expect(!FileManager.default.fileExists(atPath: folder.file("leftover.o")), "cleaned in a job")

            try "mine\n".write(toFile: folder.file("leftover.o"), atomically: true, encoding: .utf8)
            let byHand = try runCheckout(
                server: server, project: folder.path, commit: head, extra: ["GITLAB_CI": "", "CI": ""])
            #expect(byHand.exitCode == 0, "\(byHand.output)")
            #expect(read(folder.file("leftover.o")) == "mine\n", "not cleaned by hand")
            #expect(byHand.output.contains("clean: not asked"), "\(byHand.output)")

            let asked = try runCheckout(
                server: server, project: folder.path, commit: head,
                extra: ["GITLAB_CI": "", "CI": "", "GIT_CLEAN_FLAGS": "-ffdx"])
            #expect(asked.exitCode == 0, "\(asked.output)")
            #expect(!FileManager.default.fileExists(atPath: folder.file("leftover.o")), "cleaned when asked")
            #expect(asked.output.contains("GIT_CLEAN_FLAGS"), "\(asked.output)")
        }
    }
}
