import Foundation
import KilnCore
import KilnTestSupport
import Testing

private func expectConfigError(
    _ body: () throws -> Void, status: KilnExit = .badConfiguration, mentions fragments: [String]
) {
    do {
        try body()
        Issue.record("expected exit \(status.rawValue)")
    } catch let error as KilnError {
        #expect(error.exitStatus == status)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "\(error.message) should mention \(fragment)")
        }
    } catch {
        Issue.record("unexpected error \(error)")
    }
}

@Suite struct SettingsTests {
    let yaml = """
        application: demo
        build:
          timeout: 10m
          parallel: 4
          test: make test
        rotate:
          batch: "2"
          list: [a, b]
        """

    func settings(_ environment: [String: String] = [:]) throws -> Settings {
        Settings(job: JobContext(environment: environment), file: try ConfigFile.parse(yaml, path: "kiln.yml"))
    }

    @Test func flagBeatsEnvironmentBeatsFileBeatsDefault() throws {
        let env = ["KILN_PARALLEL": "8"]
        let fromFlag: Resolved<Int> = try #require(
            try settings(env).resolve(
                "build.parallel", flag: ("parallel", "16"), environment: "KILN_PARALLEL", default: 1))
        #expect(fromFlag.value == 16)
        #expect(fromFlag.source == .flag("parallel"))
        let fromEnv: Resolved<Int> = try #require(
            try settings(env).resolve(
                "build.parallel", flag: ("parallel", nil), environment: "KILN_PARALLEL", default: 1))
        #expect(fromEnv.value == 8)
        #expect(fromEnv.source == .environment("KILN_PARALLEL"))
        let fromFile: Resolved<Int> = try #require(
            try settings().resolve("build.parallel", flag: ("parallel", nil), environment: "KILN_PARALLEL", default: 1))
        #expect(fromFile.value == 4)
        #expect(fromFile.source == .file(path: "kiln.yml", line: 4))
        let fromDefault: Resolved<Int> = try #require(
            try settings().resolve("build.retries", environment: "KILN_RETRIES", default: 3))
        #expect(fromDefault.value == 3)
        #expect(fromDefault.source == .defaultValue)
        let absent: Resolved<String>? = try settings().resolve("build.nothing")
        #expect(absent == nil)
    }

    @Test func emptyVariableCountsAsUnset() throws {
        let resolved: Resolved<String> = try #require(
            try settings(["KILN_APP": ""]).resolve("application", environment: "KILN_APP"))
        #expect(resolved.value == "demo")
    }

    @Test func durationsAndQuotedNumbers() throws {
        let timeout: Resolved<Seconds> = try settings().require("build.timeout")
        #expect(timeout.value == Seconds(600))
        let batch: Resolved<Int> = try settings().require("rotate.batch")
        #expect(batch.value == 2)
        #expect(Seconds(settingText: "1h30m") == Seconds(5400))
        #expect(Seconds(settingText: "90") == Seconds(90))
        #expect(Seconds(settingText: "1.5s") == Seconds(1.5))
        #expect(Seconds(settingText: "10 minutes") == nil)
        #expect(Seconds(settingText: "10m5") == nil)
    }

    @Test func wrongTypeInFileNamesKeyAndLine() {
        expectConfigError(
            { let _: Resolved<Int>? = try settings().resolve("build.test") },
            mentions: ["kiln.yml:5", "build.test", "a whole number", "make test"])
        expectConfigError(
            { let _: Resolved<String>? = try settings().resolve("rotate.list") },
            mentions: ["kiln.yml:8", "rotate.list", "found a list"])
    }

    @Test func wrongTypeInEnvironmentNamesTheVariable() {
        expectConfigError(
            {
                let _: Resolved<Int>? = try settings(["KILN_PARALLEL": "many"]).resolve(
                    "build.parallel", environment: "KILN_PARALLEL")
            },
            mentions: ["KILN_PARALLEL", "many"])
    }

    @Test func wrongFlagIsAUsageError() {
        expectConfigError(
            { let _: Resolved<Int>? = try settings().resolve("build.parallel", flag: ("parallel", "x")) },
            status: .usage, mentions: ["--parallel", "x"])
    }

    @Test func missingRequiredSettingSaysHowToGiveIt() {
        expectConfigError(
            {
                let _: Resolved<String> = try settings().require(
                    "bake.region", flag: ("region", nil), environment: "AWS_REGION")
            },
            mentions: ["bake.region", "--region", "AWS_REGION", "kiln.yml"])
    }

    @Test func syntaxErrorNamesTheLine() {
        expectConfigError(
            { _ = try ConfigFile.parse("build:\n  test: [unclosed\n  other: 1\n", path: "/p/kiln.yml") },
            mentions: ["/p/kiln.yml:", "YAML syntax"])
        do {
            _ = try ConfigFile.parse("a: 1\nb: 2\nc: [x\n", path: "kiln.yml")
        } catch let error as KilnError {
            #expect(error.message.hasPrefix("kiln.yml:4") || error.message.hasPrefix("kiln.yml:3"), "\(error.message)")
        } catch { Issue.record("\(error)") }
    }

    @Test func duplicateKeyAndNonMappingTopLevelAreRefused() {
        expectConfigError(
            { _ = try ConfigFile.parse("build:\n  test: a\n  test: b\n", path: "kiln.yml") },
            mentions: ["kiln.yml:2", "test", "given twice"])
        expectConfigError(
            { _ = try ConfigFile.parse("- a\n- b\n", path: "kiln.yml") },
            mentions: ["kiln.yml:1", "mapping"])
    }

    @Test func fileIsFoundByFlagVariableOrProjectFolder() throws {
        let folder = TemporaryDirectory()
        try "application: from-project\n".write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        try "application: named\n".write(toFile: folder.file("other.yml"), atomically: true, encoding: .utf8)
        let project = JobContext(environment: ["CI_PROJECT_DIR": folder.path])
        #expect(try ConfigFile.load(flag: nil, job: project).node("application") == .scalar("from-project", line: 1))
        #expect(
            try ConfigFile.load(flag: folder.file("other.yml"), job: project).node("application")
                == .scalar("named", line: 1))
        let named = JobContext(environment: ["CI_PROJECT_DIR": folder.path, "KILN_CONFIG": folder.file("other.yml")])
        #expect(try ConfigFile.load(flag: nil, job: named).path == folder.file("other.yml"))
        // Absent default file: no settings, no error. Absent named file: exit 78.
        let empty = JobContext(environment: ["CI_PROJECT_DIR": folder.file("nowhere")])
        #expect(try ConfigFile.load(flag: nil, job: empty) == .empty)
        expectConfigError(
            { _ = try ConfigFile.load(flag: folder.file("missing.yml"), job: project) },
            mentions: ["missing.yml", "not found"])
    }
}
