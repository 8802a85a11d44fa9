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
                artifact: ApplicationArtifact(path: "kiln/demo.tar.gz", size: 1, sha256: "00", kind: .tarGz),
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
                application: "demo", applicationVersion: "v1", commit: "c", role: .base, name: "n", region: "us-east-1",
                amiID: "ami-1", amis: ["us-east-1": "ami-1"], sourceAMI: "ami-0", bakeKey: "k", outcome: .reused,
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
                sha256: "00",
                templates: [], variables: [], amiID: "ami-1"), fileName: UserDataResult.fileName(environment: "test"))
        #expect(userData["format"] as? String == "cloud-config")

        let checkout = try roundTrip(
            CheckoutResult(
                repository: "http://127.0.0.1/x.git", commit: "c", shortCommit: "c", ref: nil, tag: nil,
                pipelineID: nil,
                versionString: "c", commitTime: nil, subject: nil, strategy: .archive, submodules: [], bytesReceived: 0,
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
