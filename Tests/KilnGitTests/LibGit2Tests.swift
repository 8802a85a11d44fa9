import KilnGit
import Testing

@Suite struct LibGit2Tests {
    @Test func linksDebiansLibgit2WithHTTPS() {
        #expect(LibGit2.version.hasPrefix("1."))
        #expect(LibGit2.supportsHTTPS)
    }

    /// Packs are mapped in 1 MiB windows, at most 2 MiB at a time: libgit2's defaults (1 GiB, 8 GiB) leave
    /// every page a checkout read resident, the whole pack on the benchmark's clone (issue 17, peak memory);
    /// 4 MiB left the clone's peak at 2.07x the runner's git, 2 MiB at 1.94x.
    @Test func mapsPacksInSmallWindows() {
        #expect(LibGit2.packWindows.window == 1 << 20)
        #expect(LibGit2.packWindows.limit == 2 << 20)
    }
}
