import KilnGit
import Testing

@Suite struct LibGit2Tests {
    @Test func linksDebiansLibgit2WithHTTPS() {
        #expect(LibGit2.version.hasPrefix("1."))
        #expect(LibGit2.supportsHTTPS)
    }
}
