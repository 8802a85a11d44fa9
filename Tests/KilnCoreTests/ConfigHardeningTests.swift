import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// kiln.yml refused while it is read (issue 13, items 4, 5, 11): anchors,
/// aliases, merge keys and keys given twice; durations that are not GitLab's
/// finite, bounded ones; keys no section knows.
@Suite struct ConfigHardeningTests {
    func refusal(_ yaml: String, load: Bool = false) -> String? {
        do {
            if load {
                let folder = TemporaryDirectory()
                try yaml.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
                _ = try ConfigFile.load(path: folder.file("kiln.yml"))
            } else {
                _ = try ConfigFile.parse(yaml, path: "kiln.yml")
            }
            return nil
        } catch let error as KilnError {
            #expect(error.exitStatus == .badConfiguration)
            return error.message
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test func anchorsAliasesAndMergeKeysAreRefusedWithTheirLine() throws {
        let alias = try #require(refusal("application: demo\nx: &t 10m\nbuild:\n  timeout: *t\n"))
        #expect(alias.hasPrefix("kiln.yml:2: x: YAML anchors and aliases (&t, *t)"), "\(alias)")
        let anchoredMapping = try #require(refusal("base: &b\n  a: 1\nbuild:\n  timeout: 1\n"))
        #expect(anchoredMapping.hasPrefix("kiln.yml:1: base: YAML anchors"), "\(anchoredMapping)")
        #expect(anchoredMapping.contains("anchors and aliases"))
        let merge = try #require(refusal("build:\n  <<: {timeout: 1}\n  test: make\n"))
        #expect(merge.hasPrefix("kiln.yml:2: build.<<: YAML merge keys"), "\(merge)")
    }

    @Test func aKeyGivenTwiceNamesBothLines() throws {
        let twice = try #require(refusal("build:\n  test: a\n  junit: x\n  test: b\n"))
        #expect(twice.contains("kiln.yml:2"), "\(twice)")
        #expect(twice.contains("test: given twice, on lines 2 and 4"), "\(twice)")
        // Yams sees an int and a string; Kiln reads both as the key "1".
        let mixed = try #require(refusal("env:\n  1: a\n  \"1\": b\n"))
        #expect(mixed.contains("kiln.yml:3: env.1: given twice, on lines 2 and 3"), "\(mixed)")
    }

    @Test(arguments: ["inf", "1e300", "0x10", "-1", "nan", "1e3", "1h1h", "30m1h", "721h", "10 minutes"])
    func durationsOutsideGitLabsSyntaxAreRefused(text: String) throws {
        let file = try ConfigFile.parse("application: demo\nbuild:\n  timeout: \(text)\n", path: "kiln.yml")
        let settings = Settings(job: JobContext(environment: [:]), file: file)
        do {
            let resolved: Resolved<Seconds> = try settings.require("build.timeout")
            Issue.record("'\(text)' was taken as \(resolved.value.value) seconds")
        } catch let error as KilnError {
            #expect(error.exitStatus == .badConfiguration)
            #expect(error.message.hasPrefix("kiln.yml:3: build.timeout: expected a duration"), "\(error.message)")
            #expect(error.message.contains("'\(text)'"))
        }
        #expect(Seconds(settingText: text) == nil)
    }

    @Test func gitLabsDurationsAreTaken() {
        #expect(Seconds(settingText: "90")?.value == 90)
        #expect(Seconds(settingText: "90s")?.value == 90)
        #expect(Seconds(settingText: "10m")?.value == 600)
        #expect(Seconds(settingText: "1h30m")?.value == 5400)
        #expect(Seconds(settingText: "1h 30m 5s")?.value == 5405)
        #expect(Seconds(settingText: "0.2s")?.value == 0.2)
        #expect(Seconds(settingText: "720h")?.value == Seconds.ceiling)
        #expect(Seconds(5400).description == "1h30m")
        #expect(Seconds(0.2).description == "0.2s")
        // Kiln's own values are clamped, never a trap later.
        #expect(Seconds(.infinity).value == Seconds.ceiling)
        #expect(LogWriter.formatDuration(.infinity) == "over a year")
    }

    @Test func unknownKeysInEverySectionAreRefusedWithASuggestion() throws {
        let cases: [(yaml: String, expected: String)] = [
            ("aplication: demo\n", "kiln.yml:1: aplication: unknown key; did you mean 'application'?"),
            ("bulid:\n  test: make\n", "kiln.yml:1: bulid: unknown key; did you mean 'build'?"),
            ("checkout:\n  stratgy: clone\n", "kiln.yml:2: checkout.stratgy: unknown key; did you mean 'strategy'?"),
            (
                "environments:\n  test:\n    rotat: {}\n",
                "kiln.yml:3: environments.test.rotat: unknown key; did you mean 'rotate'?"
            ),
            (
                "environments:\n  test:\n    variabls: {A: b}\n",
                "kiln.yml:3: environments.test.variabls: unknown key; did you mean 'variables'?"
            ),
            (
                "environments:\n  live:\n    rotate:\n      health:\n        timout: 1m\n",
                "kiln.yml:5: environments.live.rotate.health.timout: unknown key; did you mean 'timeout'?"
            ),
            (
                "build:\n  test:\n    - run: make\n      tiemout: 1m\n",
                "kiln.yml:4: build.test[0].tiemout: unknown key; did you mean 'timeout'?"
            ),
            ("zzz: 1\n", "kiln.yml:1: zzz: unknown key; expected one of application, bake, build"),
        ]
        for (yaml, expected) in cases {
            let message = try #require(refusal(yaml, load: true), "\(yaml) was accepted")
            #expect(message.hasSuffix(expected) || message.contains(expected), "\(message)")
        }
        // What users name themselves is not checked against a list.
        #expect(
            refusal(
                """
                application: demo
                environments:
                  anything:
                    variables: {MY_NAME: x, OTHER: {env: HOME}}
                bake:
                  variables: {my_packer_var: "1"}
                build:
                  commands: [make]
                  test:
                    - {run: make test, env: {ANY_NAME: "1"}}
                  package: {paths: [dist]}
                """, load: true) == nil)
    }
}
