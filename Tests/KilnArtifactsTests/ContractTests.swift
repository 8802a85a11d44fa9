import Foundation
import KilnArtifacts
import KilnCore
import Testing

/// The contracts as JSON: the enums that replaced strings keep the strings
/// Kiln 0.1.0 wrote, so artifacts of a pipeline that started before an
/// upgrade still read, and what is written reads the same elsewhere.
@Suite struct ContractTests {
    func roundTrip<P: ArtifactPayload & Equatable>(_ payload: P, fileName: String? = nil) throws -> [String: Any] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-contracts-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = ArtifactStore(
            directory: folder, producer: Producer(name: "test"), clock: .fixed(Date(timeIntervalSince1970: 0)))
        let path = try store.write(payload, fileName: fileName)
        #expect(try store.read(P.self, fileName: fileName).payload == payload)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    @Test func enumsAreWrittenAsTheStringsOfKiln010() throws {
        let build = try roundTrip(
            BuildResult(
                application: "demo", applicationVersion: "v1", commit: String(repeating: "a", count: 40),
                outcome: .passed,
                artifact: ApplicationArtifact(
                    path: "kiln/demo.tar.gz", size: 1, sha256: String(repeating: "0", count: 64), kind: .tarGz),
                tests: nil,
                commands: [
                    .init(
                        name: "test 1", command: "make test", phase: .test, durationSeconds: 1, status: "exit 0",
                        succeeded: true)
                ]))
        #expect(build["outcome"] as? String == "passed")
        #expect((build["artifact"] as? [String: Any])?["kind"] as? String == "tar.gz")
        #expect(((build["commands"] as? [[String: Any]])?.first)?["phase"] as? String == "test")

        let image = try roundTrip(
            ImageResult(
                application: "demo", applicationVersion: "v1", commit: "", role: .base, name: "n", region: "us-east-1",
                amiID: "ami-0123456789abcdef0", amis: ["us-east-1": "ami-0123456789abcdef0"], sourceAMI: "ami-12345678",
                bakeKey: "k", outcome: .reused,
                packerSeconds: nil, pipelineID: nil))
        #expect(image["role"] as? String == "base")
        #expect(image["outcome"] as? String == "reused")

        let rotation = try roundTrip(
            RotationResult(
                environment: "test", autoScalingGroup: "g", release: "r", application: "demo", applicationVersion: "v1",
                amiID: "ami-1", strategy: .blueGreen, outcome: .nothingToDo, fromVersion: 1, toVersion: 1, batches: 0,
                launched: [], terminated: [], lowestHealthy: nil, largestGroup: 2, failure: nil, durationSeconds: 0,
                calls: [:]),
            fileName: RotationResult.fileName(environment: "test"))
        #expect(rotation["strategy"] as? String == "blue-green")
        #expect(rotation["outcome"] as? String == "nothing-to-do")

        let userData = try roundTrip(
            UserDataResult(
                environment: "test", format: .cloudConfig, gzip: false, path: "kiln/userdata-test.yaml", size: 1,
                sha256: String(repeating: "0", count: 64),
                templates: [], variables: [], amiID: "ami-12345678"),
            fileName: UserDataResult.fileName(environment: "test"))
        #expect(userData["format"] as? String == "cloud-config")

        let checkout = try roundTrip(
            CheckoutResult(
                repository: "http://127.0.0.1/x.git", commit: String(repeating: "c", count: 40),
                shortCommit: "cccccccc", ref: nil, tag: nil,
                pipelineID: nil,
                versionString: "cccccccc", commitTime: nil, subject: nil, strategy: .archive, submodules: [],
                bytesReceived: 0,
                objectsReceived: 0, phases: [:], discardedCache: nil))
        #expect(checkout["strategy"] as? String == "archive")
    }

    @Test func anUnknownOutcomeIsABadArtifactNamingTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-contracts-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let json = """
            {"schema": "kiln.build", "version": 1, "producer": {"name": "kiln-build", "version": "0.1.0"},
             "createdAt": "2026-01-01T00:00:00Z", "application": "demo", "applicationVersion": "v1",
             "commit": "c", "outcome": "maybe", "commands": []}
            """
        try json.write(toFile: folder + "/build.json", atomically: true, encoding: .utf8)
        let store = ArtifactStore(directory: folder, producer: Producer(name: "test"))
        do {
            _ = try store.read(BuildResult.self)
            Issue.record("an outcome of 'maybe' was accepted")
        } catch let error as KilnError {
            #expect(error.exitStatus == .badArtifact)
            #expect(error.message.contains("build.json"))
        }
    }

    @Test func theApplicationTagIsReadUnderItsOldNameToo() {
        #expect(KilnTag.application(in: [KilnTag.application: "demo"]) == "demo")
        #expect(KilnTag.application(in: [KilnTag.legacyApplication: "old"]) == "old")
        #expect(KilnTag.application(in: [:]) == nil)
    }
}

/// Issue 13, item 13: identifiers from artifacts are checked by their git
/// and AWS shapes when read; a NUL, a git option or a path climbing out of a
/// folder in one is a bad artifact, and the message shows it escaped.
@Suite struct IdentifierShapeTests {
    func image(
        amiID: String = "ami-0123456789abcdef0", commit: String = String(repeating: "a", count: 40),
        version: String = "v1.2.0"
    ) -> ImageResult {
        ImageResult(
            application: "demo", applicationVersion: version, commit: commit, role: .app, name: "n",
            region: "us-east-1",
            amiID: amiID, amis: ["us-east-1": amiID], sourceAMI: "ami-12345678", bakeKey: "k", outcome: .baked,
            packerSeconds: nil, pipelineID: nil)
    }

    func readBack(_ payload: ImageResult) throws -> Result<ImageResult, KilnError> {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-shapes-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = ArtifactStore(directory: folder, producer: Producer(name: "test"))
        try store.write(payload)
        do {
            return .success(try store.read(ImageResult.self).payload)
        } catch let error as KilnError {
            return .failure(error)
        }
    }

    @Test(arguments: [
        ("amiID", "ami-\u{0}12345678"), ("amiID", "--upload-pack=touch /tmp/x"), ("amiID", "ami-XYZ"),
        ("commit", "../../etc/passwd"), ("commit", String(repeating: "a", count: 39)),
        ("applicationVersion", "--upload-pack=x"), ("applicationVersion", "../../etc"),
        ("applicationVersion", "v1\u{0}"),
    ])
    func aValueOfTheWrongShapeIsABadArtifact(field: String, value: String) throws {
        let payload: ImageResult =
            switch field {
            case "amiID": image(amiID: value)
            case "commit": image(commit: value)
            default: image(version: value)
            }
        guard case .failure(let error) = try readBack(payload) else {
            Issue.record("\(field) \(value.debugDescription) was accepted")
            return
        }
        #expect(error.exitStatus == .badArtifact)
        #expect(error.message.contains("field '\(field)'"), "\(error.message)")
        #expect(!error.message.contains("\u{0}"), "a NUL is printed escaped")
    }

    @Test func wellShapedValuesPass() throws {
        #expect(try readBack(image()).get() == image())
        #expect(
            try readBack(image(amiID: "ami-12345678", version: "release/2.0+build.7")).get().amiID == "ami-12345678")
        #expect(Identifier.isVersion("pkg@1.0.0"), "git allows @ in a tag (not @{)")
        #expect(Identifier.isCommit(String(repeating: "f", count: 64)))
        #expect(!Identifier.isCommit(String(repeating: "F", count: 40)))
    }
}
