import Foundation
import KilnGit
import KilnTestSupport
import Testing

/// The version string in checkout.json is `git describe --tags` (issue 17, item 2): Kiln computes it itself
/// (KilnGit's TagDescriber), and git is the reference.
@Suite struct CheckoutDescribeTests {
    /// A history with merges, branches, annotated and lightweight tags (two on one commit, one on a side
    /// branch), more tags than git's 10 candidates, and commits made within the same second (ties in commit
    /// date order): every commit described as git describes it.
    @Test func describesEveryCommitAsGitDescribeTagsDoes() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        try fixture.commit(work, ["base.txt": "0\n"], message: "Untagged root")
        var step = 0
        func commit(_ message: String) throws -> String {
            step += 1
            return try fixture.commit(work, ["f\(step % 5).txt": "\(step)\n"], message: message)
        }
        for release in 1...14 {
            let tagged = try commit("Release \(release)")
            if release % 3 == 0 {
                try fixture.git(["tag", "v\(release).0-light", tagged], in: work)
            } else {
                try fixture.git(["tag", "-a", "v\(release).0", "-m", "release \(release)", tagged], in: work)
            }
            if release == 5 {
                // Two tags on one commit: the annotated one wins over the lightweight one.
                try fixture.git(["tag", "a-light-twin", tagged], in: work)
            }
            try fixture.git(["checkout", "-q", "-b", "topic-\(release)"], in: work)
            let side = try commit("Topic \(release)")
            if release == 7 { try fixture.git(["tag", "-a", "side-7", "-m", "on a branch", side], in: work) }
            try commit("Topic \(release), more")
            try fixture.git(["checkout", "-q", "main"], in: work)
            try commit("Main after \(release)")
            if release % 2 == 0 {
                try fixture.git(
                    ["merge", "-q", "--no-ff", "-m", "Merge topic-\(release)", "topic-\(release)"], in: work)
            }
        }
        let repository = try GitRepository.open(at: work)
        let all = try fixture.git(["rev-list", "--all"], in: work).split(separator: "\n").map(String.init)
        #expect(all.count > 60)
        var described = 0
        for sha in all {
            let git = try? fixture.git(["describe", "--tags", sha], in: work)
            #expect(repository.describe(sha) == git, "\(sha)")
            if git != nil { described += 1 }
        }
        #expect(described == all.count - 1, "every commit but the untagged root has a tag below it")
    }

    /// git abbreviates to more than 7 digits once the packs hold 2^14 objects or more (object-name.c,
    /// `repo_find_unique_abbrev_r`: `msb(count) + 1` bits, half of them rounded up as hex digits): 16,400
    /// packed blobs make it 8, and Kiln's version string must say the same.
    @Test func abbreviatesAsGitDoesForTheRepositorysSize() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/big")
        let tagged = try fixture.commit(work, ["a.txt": "a\n"], message: "Tagged")
        try fixture.git(["tag", "-a", "v1.0", "-m", "release", tagged], in: work)
        // 16,400 small files in one commit, then one pack (git counts packed objects only).
        var files: [String: String] = ["a.txt": "b\n"]
        for index in 0..<16_400 { files["blobs/b\(index)"] = "\(index)\n" }
        let head = try fixture.commit(work, files, message: "After")
        try fixture.git(["repack", "-a", "-d", "-q"], in: work)
        let git = try fixture.git(["describe", "--tags", head], in: work)
        #expect(git == "v1.0-1-g\(head.prefix(8))", "the premise: git abbreviates to 8 here")
        #expect(try GitRepository.open(at: work).describe(head) == git)
    }
}
