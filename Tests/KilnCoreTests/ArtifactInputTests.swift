import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, items 4 (duplicate keys in artifacts) and 14: an artifact that
/// is not what it should be is named for what it is, and never read whole
/// when it is huge. Each of these was misreported on 0.1.0 ("not valid
/// JSON" for a fractional version and a bad date, "missing" for a FIFO, a
/// folder and /dev/zero, and a 100 MB file loaded into memory).
@Suite struct ArtifactInputTests {
    let payload = SamplePayload(application: "demo", artifact: .init(path: "dist/a.tar.gz", sha256: "ab"), commands: [])

    func store(_ folder: TemporaryDirectory) -> ArtifactStore {
        ArtifactStore(directory: folder.file("kiln"), producer: Producer(name: "kiln-test"))
    }

    func expect65(
        _ folder: TemporaryDirectory, mentions fragments: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try store(folder).read(SamplePayload.self)
            Issue.record("expected exit 65", sourceLocation: sourceLocation)
        } catch let error as KilnError {
            #expect(error.exitStatus == .badArtifact, sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(
                    error.message.contains(fragment), "\(error.message) should mention \(fragment)",
                    sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    func write(_ folder: TemporaryDirectory, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        try text.write(toFile: folder.file("kiln/sample.json"), atomically: true, encoding: .utf8)
    }

    func envelope(version: String = "1", createdAt: String = "\"2026-01-01T00:00:00Z\"", extra: String = "") -> String {
        """
        {"schema": "kiln.sample", "version": \(version), "producer": {"name": "kiln-test", "version": "0"},
         "createdAt": \(createdAt), "application": "demo", "artifact": {"path": "a", "sha256": "b"},
         "commands": []\(extra)}
        """
    }

    @Test func aFractionalVersionIsNamedAsSuch() throws {
        let folder = TemporaryDirectory()
        try write(folder, envelope(version: "1.5"))
        expect65(folder, mentions: ["field 'version' is not a whole number", "1.5"])
    }

    @Test func aBadCreatedAtIsNamedAsSuch() throws {
        let folder = TemporaryDirectory()
        try write(folder, envelope(createdAt: "\"yesterday\""))
        expect65(folder, mentions: ["field 'createdAt' is not an ISO 8601 time", "yesterday"])
    }

    @Test func aKeyTwiceIsRefusedWithItsLine() throws {
        let folder = TemporaryDirectory()
        try write(folder, envelope(extra: ",\n \"application\": \"other\""))
        expect65(folder, mentions: ["sample.json:4", "field 'application' appears twice"])
        let nested = TemporaryDirectory()
        try write(
            nested, envelope().replacingOccurrences(of: "\"sha256\": \"b\"", with: "\"sha256\": \"b\", \"path\": \"c\"")
        )
        expect65(nested, mentions: ["field 'artifact.path' appears twice"])
    }

    @Test func aFolderInPlaceOfTheArtifactIsNamedAFolder() throws {
        let folder = TemporaryDirectory()
        try FileManager.default.createDirectory(
            atPath: folder.file("kiln/sample.json"), withIntermediateDirectories: true)
        expect65(folder, mentions: ["sample.json: is a folder, not a file"])
    }

    @Test func aFIFOInPlaceOfTheArtifactIsNamedAndDoesNotBlock() throws {
        let folder = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        #expect(mkfifo(folder.file("kiln/sample.json"), 0o644) == 0)
        expect65(folder, mentions: ["is a FIFO (named pipe), not a file"])
    }

    @Test func aDeviceInPlaceOfTheArtifactIsNamed() throws {
        let folder = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: folder.file("kiln/sample.json"), withDestinationPath: "/dev/zero")
        expect65(folder, mentions: ["sample.json"])
    }

    @Test func aHugeArtifactIsRefusedWithoutReadingIt() throws {
        let folder = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        // Sparse: 100 MB that takes no disk, and would take 100 MB of memory if read.
        let fd = open(folder.file("kiln/sample.json"), O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(fd, 100 << 20) == 0)
        close(fd)
        expect65(folder, mentions: ["is 104857600 bytes, more than the \(ArtifactStore.maximumBytes)"])
    }

    @Test func aSymbolicLinkOutOfTheArtifactsFolderIsRefused() throws {
        let folder = TemporaryDirectory()
        let outside = TemporaryDirectory()
        let path = try store(outside).write(payload)
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: folder.file("kiln/sample.json"), withDestinationPath: path)
        expect65(folder, mentions: ["is a symbolic link to", "outside the artifacts folder"])
    }

    @Test func anEmptyOrCutShortArtifactIsNotValidJSON() throws {
        let empty = TemporaryDirectory()
        try write(empty, "")
        expect65(empty, mentions: ["not valid JSON", "empty"])
        let cut = TemporaryDirectory()
        try write(cut, String(envelope().prefix(40)))
        expect65(cut, mentions: ["not valid JSON", "cut short"])
    }

    @Test func untrustedTextIsQuotedWithItsControlCharactersEscaped() {
        #expect(Untrusted.quoted("a\u{0}b\nc'") == "'a\\u{0}b\\nc\\''")
        #expect(Untrusted.quoted(String(repeating: "x", count: 300)).count == 205)
    }
}
