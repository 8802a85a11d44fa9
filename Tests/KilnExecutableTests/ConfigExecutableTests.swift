import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// The built stages against a hostile or careless kiln.yml (issue 13, items
/// 4, 5, 11 and 12): each ends with exit 78 naming the line, and does nothing.
@Suite struct ConfigExecutableTests {
    func project(_ kilnYML: String) throws -> TemporaryDirectory {
        let folder = TemporaryDirectory()
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        return folder
    }

    /// "Billion laughs": nine levels of nine aliases, 9^9 strings once expanded.
    static let aliasBomb: String = {
        var lines = ["application: demo", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(refs)]")
        }
        lines.append("build:\n  test: *a9\n  package: {paths: [x]}")
        return lines.joined(separator: "\n") + "\n"
    }()

    @Test func anAliasBombIsRefusedAtItsFirstAnchorWithinBoundedMemory() throws {
        let folder = try project(Self.aliasBomb)
        // Under a 2 GiB address-space limit, so that expanding the aliases
        // ends the process (not the test machine) instead of answering 78.
        let run = try runCommand(
            Command(
                "/usr/bin/prlimit", ["--as=\(2 << 30)", "--", TestPaths.product("kiln-build")],
                environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": folder.path]))
        #expect(run.code == 78, "\(run.result.termination): \(run.output.suffix(400))")
        #expect(run.output.contains("kiln.yml:2: a0: YAML anchors and aliases (&a0, *a0) are not supported"))
    }

    /// The same bomb with its last alias as a mapping key: Yams hashes keys
    /// while it builds the tree, so this one never came back from the
    /// parser (found by the engineer who fixed the first; it hung past 30 s).
    @Test func anAliasBombAsAKeyIsRefusedBeforeTheParser() throws {
        let folder = try project(
            Self.aliasBomb.replacingOccurrences(of: "  test: *a9\n", with: "  test: make\n") + "map:\n  ? *a9\n  : x\n")
        let run = try runCommand(
            Command(
                "/usr/bin/prlimit", ["--as=\(2 << 30)", "--", TestPaths.product("kiln-build")],
                environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": folder.path]))
        #expect(run.code == 78, "\(run.result.termination): \(run.output.suffix(400))")
        #expect(run.output.contains("YAML anchors and aliases (*a9, here as a key) are not supported"), "\(run.output)")
    }

    @Test func kilnBuildRefusesTyposInEverySection() throws {
        let cases = [
            ("bulid:\n  test: make\n", "kiln.yml:1: bulid: unknown key; did you mean 'build'?"),
            (
                "checkout:\n  stratgy: clone\nbuild:\n  test: make\n  package: {paths: [kiln.yml]}\n",
                "kiln.yml:2: checkout.stratgy: unknown key; did you mean 'strategy'?"
            ),
            (
                "environments:\n  test:\n    rotat: {}\nbuild:\n  test: make\n  package: {paths: [kiln.yml]}\n",
                "kiln.yml:3: environments.test.rotat: unknown key; did you mean 'rotate'?"
            ),
        ]
        for (yaml, expected) in cases {
            let folder = try project(yaml)
            let (result, output) = try runBinary("kiln-build", [], environment: ["CI_PROJECT_DIR": folder.path])
            #expect(result.termination == .exited(78), "\(yaml): \(output)")
            #expect(output.contains(expected), "\(output)")
            #expect(!FileManager.default.fileExists(atPath: folder.file("kiln/build.json")))
        }
    }

    @Test(arguments: [
        ("health:\n        consecutive: 0", "rotate.health.consecutive: must be at least 1, got '0'"),
        ("health:\n        consecutive: -3", "rotate.health.consecutive: must be at least 1, got '-3'"),
        ("health:\n        unhealthy_threshold: 0", "rotate.health.unhealthy_threshold: must be at least 1, got '0'"),
        ("max_unavailable: -5", "rotate.max_unavailable: must be at least 0, got '-5'"),
        ("stale_after: 0", "rotate.stale_after: must be at least 1m, got '0s'"),
        ("health:\n        timeout: inf", "rotate.health.timeout: expected a duration"),
    ])
    func kilnRotateRefusesNonsenseBeforeAnyCall(setting: String, expected: String) throws {
        let folder = try project(
            """
            environments:
              test:
                rotate:
                  auto_scaling_group: demo
                  \(setting)
            """)
        // An endpoint nothing answers on: the refusal comes before any call.
        let (result, output) = try runBinary(
            "kiln-rotate", ["plan", "--environment", "test"],
            environment: [
                "CI_PROJECT_DIR": folder.path, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                "AWS_EC2_METADATA_DISABLED": "true",
            ])
        #expect(result.termination == .exited(78), "\(output)")
        #expect(output.contains("kiln.yml:"), "\(output)")
        #expect(output.contains("environments.test.\(expected)"), "\(output)")
    }
}
