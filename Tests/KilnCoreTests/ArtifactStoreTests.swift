import Foundation
import KilnCore
import KilnTestSupport
import Testing

struct SamplePayload: ArtifactPayload, Equatable {
    static let schemaName = "sample"
    static let schemaVersion = 1

    struct Artifact: Codable, Equatable {
        var path: String
        var sha256: String
    }

    var application: String
    var artifact: Artifact
    var commands: [String]
}

private let fixedDate = Date(timeIntervalSince1970: 1_790_000_000)

private func store(_ directory: TemporaryDirectory) -> ArtifactStore {
    ArtifactStore(directory: directory.file("kiln"), producer: Producer(name: "kiln-test"), clock: .fixed(fixedDate))
}

private func expectBadArtifact(_ body: () throws -> Void, mentions fragments: [String]) {
    do {
        try body()
        Issue.record("expected exit 65")
    } catch let error as KilnError {
        #expect(error.exitStatus == .badArtifact)
        #expect(KilnExit.for(error) == 65)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "\(error.message) should mention \(fragment)")
        }
    } catch {
        Issue.record("unexpected error \(error)")
    }
}

@Suite struct ArtifactStoreTests {
    let payload = SamplePayload(
        application: "demo", artifact: .init(path: "dist/demo-1.0.tar.gz", sha256: "ab12"),
        commands: ["make", "make test"])

    @Test func roundTripKeepsPayloadAndEnvelope() throws {
        let folder = TemporaryDirectory()
        let store = store(folder)
        let path = try store.write(payload)
        #expect(path == folder.file("kiln/sample.json"))
        let read = try store.read(SamplePayload.self)
        #expect(read.payload == payload)
        #expect(read.producer == Producer(name: "kiln-test", version: Kiln.version))
        #expect(read.createdAt == fixedDate)
    }

    @Test func writesEnvelopeBesidePayloadSortedAndPretty() throws {
        let folder = TemporaryDirectory()
        let path = try store(folder).write(payload)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "kiln.sample")
        #expect(object["version"] as? Int == 1)
        #expect((object["producer"] as? [String: String])?["name"] == "kiln-test")
        #expect(object["createdAt"] as? String == "2026-09-21T14:13:20Z")
        #expect(object["application"] as? String == "demo")
        // Sorted keys: the top-level keys appear in alphabetical order.
        let keys = ["application", "artifact", "commands", "createdAt", "producer", "schema", "version"]
        let positions = keys.map { text.range(of: "\n  \"\($0)\" :")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
        #expect(text.contains("\n  \"application\""))
        #expect(text.contains("dist/demo-1.0.tar.gz"), "slashes are not escaped")
    }

    @Test func writeLeavesNoTemporaryFiles() throws {
        let folder = TemporaryDirectory()
        let store = store(folder)
        try store.write(payload)
        try store.write(payload)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.file("kiln"))
        #expect(names == ["sample.json"])
    }

    @Test func missingFileIsExit65NamingTheFile() {
        let folder = TemporaryDirectory()
        expectBadArtifact({ _ = try store(folder).read(SamplePayload.self) }, mentions: ["sample.json", "missing"])
    }

    @Test func notJSONIsExit65() throws {
        let folder = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        try "{ not json".write(toFile: folder.file("kiln/sample.json"), atomically: true, encoding: .utf8)
        expectBadArtifact(
            { _ = try store(folder).read(SamplePayload.self) }, mentions: ["sample.json", "not valid JSON"])
    }

    private func rewrite(_ folder: TemporaryDirectory, _ change: (inout [String: Any]) -> Void) throws {
        let path = try store(folder).write(payload)
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        change(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    @Test func unknownSchemaIsExit65() throws {
        let folder = TemporaryDirectory()
        try rewrite(folder) { $0["schema"] = "kiln.other" }
        expectBadArtifact(
            { _ = try store(folder).read(SamplePayload.self) }, mentions: ["sample.json", "'schema'", "kiln.other"])
    }

    @Test func unknownVersionIsExit65() throws {
        let folder = TemporaryDirectory()
        try rewrite(folder) { $0["version"] = 2 }
        expectBadArtifact(
            { _ = try store(folder).read(SamplePayload.self) }, mentions: ["sample.json", "'version'", "2"])
    }

    @Test func missingEnvelopeFieldIsExit65() throws {
        let folder = TemporaryDirectory()
        try rewrite(folder) { $0.removeValue(forKey: "producer") }
        expectBadArtifact({ _ = try store(folder).read(SamplePayload.self) }, mentions: ["missing field 'producer'"])
    }

    @Test func missingNestedPayloadFieldIsExit65WithItsPath() throws {
        let folder = TemporaryDirectory()
        try rewrite(folder) { object in
            object["artifact"] = ["path": "x"]
        }
        expectBadArtifact(
            { _ = try store(folder).read(SamplePayload.self) },
            mentions: ["sample.json", "missing field 'artifact.sha256'"])
    }

    @Test func wrongTypeIsExit65WithItsPath() throws {
        let folder = TemporaryDirectory()
        try rewrite(folder) { $0["commands"] = ["make", 3] }
        expectBadArtifact({ _ = try store(folder).read(SamplePayload.self) }, mentions: ["commands[1]", "a string"])
    }

    @Test func directoryComesFromFlagThenEnvironmentThenProject() {
        let job = JobContext(environment: ["KILN_ARTIFACTS_DIR": "/env/dir", "CI_PROJECT_DIR": "/builds/p"])
        #expect(ArtifactStore.directory(flag: "/flag/dir", job: job) == "/flag/dir")
        #expect(ArtifactStore.directory(flag: nil, job: job) == "/env/dir")
        #expect(
            ArtifactStore.directory(flag: nil, job: JobContext(environment: ["CI_PROJECT_DIR": "/builds/p"]))
                == "/builds/p/kiln")
    }
}

@Suite struct DotenvTests {
    @Test func rendersKeyValueLines() throws {
        var dotenv = Dotenv(["KILN_AMI_ID": "ami-123", "KILN_VERSION": "1.2.0-3-gabc"])
        dotenv.set("KILN_AMI_ID", "ami-456")
        #expect(try dotenv.rendered() == "KILN_AMI_ID=ami-456\nKILN_VERSION=1.2.0-3-gabc\n")
        let folder = TemporaryDirectory()
        let store = ArtifactStore(directory: folder.path, producer: Producer(name: "t"))
        try store.writeDotenv(dotenv, fileName: "image.env")
        #expect(
            try String(contentsOfFile: folder.file("image.env"), encoding: .utf8)
                == "KILN_AMI_ID=ami-456\nKILN_VERSION=1.2.0-3-gabc\n")
    }

    @Test(arguments: [
        ("BAD-KEY", "v", "letters, digits"),
        ("", "v", "letters, digits"),
        ("K", "two\nlines", "spans lines"),
        ("K", "say \"hi\"", "quote"),
        ("K", "it's", "quote"),
    ])
    func refusesWhatGitLabRejects(key: String, value: String, problem: String) {
        #expect(throws: KilnError.self) { try Dotenv([key: value]).rendered() }
        do { _ = try Dotenv([key: value]).rendered() } catch let error as KilnError {
            #expect(error.message.contains(problem))
        } catch {}
    }

    @Test func refusesMoreThanTwentyVariablesAndFiveKilobytes() {
        var many = Dotenv()
        for index in 0...20 { many.set("K\(index)", "v") }
        #expect(throws: KilnError.self) { try many.rendered() }
        var large = Dotenv()
        large.set("BIG", String(repeating: "x", count: 5200))
        #expect(throws: KilnError.self) { try large.rendered() }
    }
}

struct ClashingPayload: ArtifactPayload {
    static let schemaName = "clash"
    static let schemaVersion = 1
    var version: String
}

@Suite struct EnvelopeKeyTests {
    @Test func aPayloadFieldNamedLikeTheEnvelopeIsRefused() {
        let folder = TemporaryDirectory()
        let store = ArtifactStore(directory: folder.path, producer: Producer(name: "t"))
        #expect(throws: KilnError.self) { try store.write(ClashingPayload(version: "1.2.3")) }
        #expect(!FileManager.default.fileExists(atPath: folder.file("clash.json")))
    }
}

@Suite struct GitLabDotenvRuleTests {
    @Test func theRulesCatchWhatGitLabRejects() {
        #expect(GitLabDotenv.violations("A=1\nB_2=two words\n") == [])
        #expect(GitLabDotenv.violations("A=1\n\nB=2\n").contains("line 2: blank"))
        #expect(GitLabDotenv.violations("# c\nA=1\n").contains("line 1: a comment"))
        #expect(GitLabDotenv.violations("A-B=1\n").contains("line 1: key 'A-B'"))
        #expect(GitLabDotenv.violations("A=\"q\"\n").contains("line 1: quotes in the value"))
        #expect(
            GitLabDotenv.violations((0...20).map { "K\($0)=v" }.joined(separator: "\n") + "\n").contains {
                $0.contains("at most 20")
            })
    }
}
