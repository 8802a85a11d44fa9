import Foundation
import KilnArtifacts
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// Issue 13's corpus: every stage that reads artifacts, run as a job would
/// run it, against each kind of malformed artifact. Each run must end in 65
/// with one error line naming the file (and the field, where there is one),
/// make no mutating AWS call (counted by the fault proxy in front of moto),
/// and leave nothing on disk: no new file in the project, none in TMPDIR.
@Suite(.serialized) struct ArtifactCorpusTests {
    /// A stage, the artifact under test, and what else it needs to get that far.
    struct Case: Sendable, CustomStringConvertible {
        let stage: String
        let arguments: [String]
        let artifact: String
        /// A field of the artifact whose type is made wrong, and its name in messages.
        let typedField: String
        var description: String { "\(stage) reading \(artifact)" }
    }

    static let cases = [
        Case(stage: "kiln-build", arguments: [], artifact: "checkout.json", typedField: "commit"),
        Case(stage: "kiln-bake", arguments: [], artifact: "build.json", typedField: "commit"),
        Case(
            stage: "kiln-userdata", arguments: ["--environment", "test"], artifact: "image.json", typedField: "amiID"),
        Case(stage: "kiln-rotate", arguments: ["--environment", "test"], artifact: "image.json", typedField: "amiID"),
        Case(
            stage: "kiln-rotate", arguments: ["--environment", "test"], artifact: "userdata-test.json",
            typedField: "sha256"),
    ]

    /// The ways an artifact is malformed: what to do to it, and what the
    /// error line must say besides the file.
    enum Malformation: String, CaseIterable, Sendable {
        case missing, empty, truncated, wrongSchema, wrongVersion, wrongType, huge, symlinkOutside, fifo, folder
    }

    static let kilnYML = """
        application: demo
        build:
          commands: ["mkdir -p dist && echo hi > dist/app"]
          package:
            paths: [dist/]
        bake:
          communicator: none
        environments:
          test:
            userdata:
              template: user_init.sh
            rotate:
              auto_scaling_group: corpus-group
        """

    /// Writes every artifact a stage could read, all valid.
    static func writeValidArtifacts(in folder: TemporaryDirectory) throws {
        let store = ArtifactStore(directory: folder.file("kiln"), producer: Producer(name: "kiln-corpus"))
        let commit = String(repeating: "c", count: 40)
        try store.write(
            CheckoutResult(
                repository: "http://127.0.0.1:9/g/demo.git", commit: commit, shortCommit: "cccccccc", ref: "main",
                tag: nil,
                pipelineID: "1", versionString: "v1.0.0", commitTime: nil, subject: nil, strategy: .fetch,
                submodules: [],
                bytesReceived: 0, objectsReceived: 0, phases: [:], discardedCache: nil))
        try "demo\n".write(toFile: folder.file("kiln/demo.tar.gz"), atomically: true, encoding: .utf8)
        let digest = try SHA256Digest.hex(ofFileAt: folder.file("kiln/demo.tar.gz"))
        try store.write(
            BuildResult(
                application: "demo", applicationVersion: "v1.0.0", commit: commit, outcome: .passed,
                artifact: ApplicationArtifact(path: "kiln/demo.tar.gz", size: 5, sha256: digest, kind: .file),
                tests: nil,
                commands: []))
        let ami = "ami-0123456789abcdef0"
        try store.write(
            ImageResult(
                application: "demo", applicationVersion: "v1.0.0", commit: commit, role: .app, name: "demo-app",
                region: "us-east-1",
                amiID: ami, amis: ["us-east-1": ami], sourceAMI: "ami-12345678", bakeKey: "k", outcome: .baked,
                packerSeconds: 1, pipelineID: "1"))
        let userData = "#!/bin/sh\necho hi\n"
        try userData.write(toFile: folder.file("kiln/userdata-test.sh"), atomically: true, encoding: .utf8)
        try store.write(
            UserDataResult(
                environment: "test", format: .shell, gzip: false, path: "kiln/userdata-test.sh",
                size: userData.utf8.count,
                sha256: SHA256Digest.hex(of: Array(userData.utf8)), templates: ["user_init.sh"], variables: [],
                amiID: ami),
            fileName: UserDataResult.fileName(environment: "test"))
        try "#!/bin/sh\necho {{ kiln.version }}\n".write(
            toFile: folder.file("user_init.sh"), atomically: true, encoding: .utf8)
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
    }

    /// Breaks `artifact` in `folder` as `malformation` says; returns what the error must mention.
    static func malform(
        _ artifact: String, _ malformation: Malformation, typedField: String, in folder: TemporaryDirectory,
        outside: TemporaryDirectory
    ) throws -> [String] {
        let path = folder.file("kiln/\(artifact)")
        let manager = FileManager.default
        let text = try String(contentsOfFile: path, encoding: .utf8)
        func rewrite(_ change: (inout [String: Any]) -> Void) throws {
            var object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            change(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        }
        switch malformation {
        case .missing:
            try manager.removeItem(atPath: path)
            return ["missing"]
        case .empty:
            try "".write(toFile: path, atomically: true, encoding: .utf8)
            return ["not valid JSON"]
        case .truncated:
            try String(text.prefix(text.count / 2)).write(toFile: path, atomically: true, encoding: .utf8)
            return ["not valid JSON"]
        case .wrongSchema:
            try rewrite { $0["schema"] = "kiln.other" }
            return ["'schema'"]
        case .wrongVersion:
            try rewrite { $0["version"] = 2 }
            return ["'version'"]
        case .wrongType:
            try rewrite { $0[typedField] = 5 }
            return ["'\(typedField)'"]
        case .huge:
            try manager.removeItem(atPath: path)
            let fd = open(path, O_CREAT | O_WRONLY, 0o644)
            _ = ftruncate(fd, 100 << 20)
            close(fd)
            return ["bytes"]
        case .symlinkOutside:
            try text.write(toFile: outside.file(artifact), atomically: true, encoding: .utf8)
            try manager.removeItem(atPath: path)
            try manager.createSymbolicLink(atPath: path, withDestinationPath: outside.file(artifact))
            return ["symbolic link", "outside the artifacts folder"]
        case .fifo:
            try manager.removeItem(atPath: path)
            _ = mkfifo(path, 0o644)
            return ["FIFO"]
        case .folder:
            try manager.removeItem(atPath: path)
            try manager.createDirectory(atPath: path, withIntermediateDirectories: false)
            return ["folder"]
        }
    }

    /// Everything under `folder`, with kinds, for before/after comparisons.
    static func listing(_ folder: String) -> [String] {
        let walker = FileManager.default.enumerator(atPath: folder)
        var names: [String] = []
        while let name = walker?.nextObject() as? String { names.append(name) }
        return names.sorted()
    }

    @Test func everyStageRefusesEveryMalformedArtifactWithoutChangingAnything() throws {
        try withStandIn("moto") { moto in
            try withStandIn("faults", ["--upstream", moto.url]) { proxy in
                for testCase in Self.cases {
                    for malformation in Malformation.allCases {
                        try check(testCase, malformation, proxy: proxy)
                    }
                }
                // No stage reached AWS with a change: every call counted is a read.
                let answer = try HTTPClient(settings: HTTPSettings()).send(
                    HTTPRequest(url: proxy.url + "/__kiln_faults/stats"))
                let stats = try JSONSerialization.jsonObject(with: answer.body) as? [String: Any] ?? [:]
                let calls = (stats["calls"] as? [String: [String: Int]]) ?? [:]
                let actions = calls.values.flatMap(\.keys)
                let mutating = actions.filter { action in
                    !["Describe", "Get", "List"].contains { action.hasPrefix($0) }
                }
                #expect(mutating.isEmpty, "mutating calls: \(mutating)")
                // The count is real: a call made through the proxy shows in it.
                let check = try runProduct(
                    "kiln-bake", ["--check-aws"],
                    environment: [
                        "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": proxy.url, "AWS_EC2_METADATA_DISABLED": "true",
                    ])
                #expect(check.code == 0, "\(check.output)")
                let after = try HTTPClient(settings: HTTPSettings()).send(
                    HTTPRequest(url: proxy.url + "/__kiln_faults/stats"))
                let counted =
                    (try JSONSerialization.jsonObject(with: after.body) as? [String: Any])?["calls"]
                    as? [String: [String: Int]]
                #expect(counted?["sts"]?["GetCallerIdentity"] == 1, "the proxy counts what goes through it")
            }
        }
    }

    func check(_ testCase: Case, _ malformation: Malformation, proxy: StandIn) throws {
        let folder = TemporaryDirectory("kiln-corpus")
        let outside = TemporaryDirectory("kiln-corpus-outside")
        let temporary = TemporaryDirectory("kiln-corpus-tmp")
        try Self.writeValidArtifacts(in: folder)
        let mentions = try Self.malform(
            testCase.artifact, malformation, typedField: testCase.typedField, in: folder, outside: outside)
        let before = Self.listing(folder.path)
        let run = try runProduct(
            testCase.stage, testCase.arguments,
            environment: [
                "PATH": "/usr/bin:/bin", "HOME": folder.path, "TMPDIR": temporary.path, "CI_PROJECT_DIR": folder.path,
                "CI_PROJECT_NAME": "demo", "CI_PIPELINE_ID": "1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": proxy.url,
                "AWS_EC2_METADATA_DISABLED": "true", "KILN_SOURCE_AMI": "ami-12345678",
                "NO_PROXY": "127.0.0.1,localhost",
            ])
        let label = "\(testCase), \(malformation.rawValue)"
        #expect(run.code == 65, "\(label): \(run.output)")
        let errors = run.output.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(errors.count == 1, "\(label): one error line, got \(errors)")
        let line = errors.first.map(String.init) ?? ""
        #expect(line.contains(testCase.artifact), "\(label): \(line)")
        for mention in mentions {
            #expect(line.contains(mention), "\(label): '\(mention)' in \(line)")
        }
        // kiln-rotate reports its refusal (outcome `refused`, issue 16) and changes nothing else.
        let reported =
            testCase.stage == "kiln-rotate"
            ? ["kiln/rotation-test.env", "kiln/rotation-test.json", "kiln/rotation-test.svg"] : []
        #expect(Self.listing(folder.path) == (before + reported).sorted(), "\(label): the project folder changed")
        if !reported.isEmpty {
            let report = try String(contentsOfFile: folder.path + "/kiln/rotation-test.json", encoding: .utf8)
            #expect(report.contains("\"outcome\" : \"refused\""), "\(label): \(report)")
            for file in reported { try FileManager.default.removeItem(atPath: folder.path + "/" + file) }
        }
        #expect(Self.listing(temporary.path).isEmpty, "\(label): left in TMPDIR: \(Self.listing(temporary.path))")
    }
}
