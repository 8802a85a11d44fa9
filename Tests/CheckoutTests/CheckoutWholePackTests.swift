import Foundation
import KilnGit
import KilnTestSupport
import Testing

/// A fetch into a repository that has the history before it receives a whole pack, not a thin one
/// (KilnGit's WholePackTransport): libgit2's indexer adds a thin pack's missing bases one per pass over
/// every unresolved delta, which took 3 to 4 s on the benchmark's warm fetch of 100 commits (issue 17).
@Suite struct CheckoutWholePackTests {
    @Test func aFetchOnTopOfAHistoryReceivesNoDeltaAgainstWhatItHas() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        // Files large enough that git deltifies a one-line change against the version the client has.
        var files: [String: String] = [:]
        for index in 0..<8 { files["src/f\(index).txt"] = randomText(bytes: 8_000, seed: UInt64(index + 1)) }
        let first = try fixture.commit(work, files, message: "First")
        try fixture.push(work)
        let clone = TemporaryDirectory("kiln-whole-pack")
        try withGitServer(fixture) { server in
            let repository = try GitRepository.create(at: clone.path)
            try repository.setRemote(url: "\(server.url)/group/app.git")
            let url = try #require(URLComponents(string: server.url))
            let credentials = GitCredentials(
                username: "gitlab-ci-token", password: token, host: "\(url.host ?? ""):\(url.port ?? 0)")
            let refspecs = ["+refs/heads/main:refs/remotes/origin/main"]
            try repository.fetch(refspecs: refspecs, credentials: credentials)
            #expect(repository.hasCommit(first))

            for index in 0..<8 { files["src/f\(index).txt"]! += "one more line \(index)\n" }
            let second = try fixture.commit(work, files, message: "Second")
            try fixture.push(work)
            let received = try repository.fetch(refspecs: refspecs, credentials: credentials)
            #expect(repository.hasCommit(second))
            // libgit2 counts the bases it had to add from the repository to thicken a pack as local objects.
            #expect(received.localObjects == 0, "\(received)")
            #expect(received.receivedObjects >= 10, "the commit, its trees and the eight blobs: \(received)")
        }
    }
}
