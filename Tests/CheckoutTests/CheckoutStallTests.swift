import Foundation
import KilnCore
import KilnTestSupport
import Synchronization
import Testing

/// A server that stops sending mid-transfer: the checkout gives up after the
/// no-progress time (exit 75, safe to retry) and leaves nothing partial,
/// also when GitLab cancels the job (SIGTERM) while it waits.
@Suite struct CheckoutStallTests {
    func largeProject(_ fixture: GitFixture) throws -> String {
        let work = try fixture.makeProject("group/app")
        let head = try fixture.commit(work, ["big.txt": randomText(bytes: 400_000, seed: 7)], message: "Big")
        try fixture.push(work)
        return head
    }

    /// Every name under `folder`, relative to it.
    func contents(_ folder: String) -> [String] {
        (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).sorted()
    }

    @Test func stalledFetchEndsIn75WithNothingHalfWritten() throws {
        let fixture = try GitFixture()
        let head = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        let temporary = TemporaryDirectory("kiln-tmp")
        try withGitServer(fixture, faults: ["--stall", "upload_pack=4096"]) { server in
            let started = Date()
            let run = try runCheckout(
                server: server, project: project.path, commit: head,
                extra: ["KILN_GIT_TIMEOUT": "2s", "TMPDIR": temporary.path])
            let elapsed = Date().timeIntervalSince(started)
            #expect(run.exitCode == 75, "\(run.output)")
            #expect(run.output.contains("no data for 2s"), "\(run.output)")
            // One stalled transfer, not retried: the job's retry (exit 75) is the one that counts.
            #expect(elapsed < 20, "took \(elapsed) s")
            #expect(contents(temporary.path) == [])
            #expect(!FileManager.default.fileExists(atPath: project.file("big.txt")), "work tree not written")
            #expect(!FileManager.default.fileExists(atPath: project.file("kiln/checkout.json")))
            let packs = contents(project.file(".git/objects/pack"))
            #expect(packs == [], "no partial pack: \(packs)")
        }
    }

    @Test func stalledArchiveEndsIn75WithNoPartialFile() throws {
        let fixture = try GitFixture()
        let head = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        let temporary = TemporaryDirectory("kiln-tmp")
        let config = TemporaryDirectory("kiln-config")
        // The no-progress time from kiln.yml (KILN_CONFIG: a kiln.yml in the empty project would be foreign).
        try "checkout:\n  timeout: 2s\n".write(toFile: config.file("kiln.yml"), atomically: true, encoding: .utf8)
        try withGitServer(fixture, faults: ["--stall", "archive=1000"]) { server in
            let started = Date()
            let run = try runCheckout(
                server: server, project: project.path, commit: head,
                extra: [
                    "KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url, "TMPDIR": temporary.path,
                    "KILN_CONFIG": config.file("kiln.yml"),
                ])
            let elapsed = Date().timeIntervalSince(started)
            #expect(run.exitCode == 75, "\(run.output)")
            #expect(run.output.contains("no data for 2s"), "\(run.output)")
            #expect(elapsed < 20, "took \(elapsed) s")
            #expect(contents(temporary.path) == [], "no partial kiln-archive-*.tar.gz")
            #expect(contents(project.path) == [], "nothing unpacked")
        }
    }

    /// The archive is unpacked as it arrives (no file in TMPDIR, the first
    /// file's bytes on disk while the server still holds the rest back), and a
    /// cancel then leaves nothing of it.
    @Test func archiveIsStreamedAndSigtermLeavesNothingOfIt() throws {
        let fixture = try GitFixture()
        let head = try largeProject(fixture)
        let project = TemporaryDirectory("kiln-project")
        let temporary = TemporaryDirectory("kiln-tmp")
        // Past gzip's first input buffer (it reads 256 KiB before it inflates:
        // INBUFSIZ in gzip's gzip.h), short of the whole (about 300 KB compressed).
        try withGitServer(fixture, faults: ["--stall", "archive=280000"]) { server in
            let environment = [
                "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "GITLAB_CI": "true",
                "CI_PROJECT_DIR": project.path, "CI_REPOSITORY_URL": "\(server.url)/group/app.git",
                "CI_COMMIT_SHA": head, "CI_COMMIT_REF_NAME": "main", "CI_PROJECT_PATH": "group/app",
                "CI_JOB_TOKEN": token, "KILN_GIT_STRATEGY": "archive", "CI_SERVER_URL": server.url,
                "TMPDIR": temporary.path,
            ]
            // GitLab's cancel, as the process runner forwards it: SIGTERM to kiln-checkout's process group.
            let cancellation = Cancellation()
            let sink = MemorySink()
            let runner = ProcessRunner(
                log: LogWriter(sink: sink, style: .plain, secrets: SecretMask()), cancellation: cancellation)
            let unpacking = project.file(".kiln-unpacking/big.txt")
            let sawPartial = Mutex(false)
            let watcher = Thread {
                // Bounded wait until tar has written the first file's first bytes: the download is under way.
                for _ in 0..<600 {
                    let size = (try? FileManager.default.attributesOfItem(atPath: unpacking)[.size]) as? Int ?? 0
                    if size > 0 {
                        sawPartial.withLock { $0 = true }
                        break
                    }
                    usleep(100_000)
                }
                cancellation.cancel(signal: SIGTERM)
            }
            watcher.start()
            // The runner waits for kiln-checkout's group to end, then reports the cancel.
            #expect(throws: CancelledBySignal.self) {
                try runner.run(
                    Command(TestPaths.product("kiln-checkout"), [], environment: environment), output: .log,
                    timeout: 600)
            }
            #expect(sawPartial.withLock { $0 }, "tar unpacked while the answer was held back: \(sink.text)")
            #expect(sink.text.contains("cancelled by signal 15"), "\(sink.text)")
            #expect(contents(temporary.path) == [], "nothing stored in TMPDIR")
            #expect(contents(project.path) == [], "nothing of the archive left in the project folder")
        }
    }
}
