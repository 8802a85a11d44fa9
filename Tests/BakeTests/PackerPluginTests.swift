import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, plugins: `packer init` ran only when Kiln's own
/// `plugins.pkr.hcl` sat beside a one-file template, so a team's folder with
/// its own `required_plugins` failed on Packer 1.10 and later (which bundle
/// no plugins). Packer's version is read once; `packer init` runs whenever
/// the template declares `required_plugins` and Packer has `init` (1.7+);
/// Packer 1.6.6 has no `init`, and a template that needs one is refused
/// there. Only Packer 1.6.6 is real on this machine: a fake `packer` on PATH
/// records its calls.
@Suite(.serialized) struct PackerPluginTests {
    static let requiredPlugins = """
        packer {
          required_plugins {
            amazon = {
              version = ">= 1.2.0"
              source  = "github.com/hashicorp/amazon"
            }
          }
        }

        """

    /// A team's three-file folder, with `required_plugins` in its build file or without.
    static func teamProject(moto: StandIn, declaresPlugins: Bool) throws -> BakeProject {
        let project = try BakeProject(moto: moto, kilnYML: kilnYML("  template: packer/team"))
        let folder = project.folder.file("packer/team")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in try TemplateFolderTests.threeFiles() {
            let text = file.name == "build.pkr.hcl" && declaresPlugins ? requiredPlugins + file.text : file.text
            try text.write(toFile: "\(folder)/\(file.name)", atomically: true, encoding: .utf8)
        }
        return project
    }

    /// Every case in one moto (a fresh project each): the fake build launches nothing.
    @Test func initIsTakenOrSkippedByVersionAndTemplate() throws {
        let cases = [
            ("1.6.6", false), ("1.6.6", true), ("1.7.0", false), ("1.7.0", true), ("1.10.0", false), ("1.10.0", true),
        ]
        try withStandIn("moto") { moto in
            for (version, declaresPlugins) in cases { try Self.bake(moto: moto, version: version, declaresPlugins) }
        }
    }

    static func bake(moto: StandIn, version: String, _ declaresPlugins: Bool) throws {
        do {
            let project = try Self.teamProject(moto: moto, declaresPlugins: declaresPlugins)
            let packer = try FakePacker(in: project.folder.file("bin"), version: version)
            let run = try project.bake(environment: ["PATH": "\(packer.folder):/usr/local/bin:/usr/bin:/bin"])
            let folder = project.folder.file("packer/team")
            let calls = packer.calls
            #expect(calls.first == "version", "the version is read first: \(calls)")
            #expect(calls.filter { $0 == "version" }.count == 1, "the version is read once: \(calls)")
            let supportsInit = version != "1.6.6"
            switch (supportsInit, declaresPlugins) {
            case (false, true):
                #expect(run.code == 78, "\(version) \(declaresPlugins): \(run.output)")
                #expect(
                    run.output.contains("packer/team/build.pkr.hcl declares required_plugins"),
                    "\(version) \(declaresPlugins): \(run.output)")
                #expect(run.output.contains("Packer 1.6.6"))
                #expect(calls == ["version"], "neither init nor build on a Packer without init: \(calls)")
            case (false, false):
                #expect(run.code == 69, "the fake build fails: \(run.output)")
                #expect(run.output.contains("packer 1.6.6: plugins built in (before 1.7), no packer init"))
                #expect(calls.count == 2 && calls[1].hasPrefix("build ") && calls[1].hasSuffix(folder), "\(calls)")
            case (true, false):
                #expect(run.code == 69, "\(version) \(declaresPlugins): \(run.output)")
                #expect(run.output.contains("packer \(version): the template declares no required_plugins"))
                #expect(calls.count == 2 && calls[1].hasPrefix("build "), "\(calls)")
            case (true, true):
                #expect(run.code == 69, "\(version) \(declaresPlugins): \(run.output)")
                #expect(
                    run.output.contains(
                        "packer \(version): packer init (required_plugins in packer/team/build.pkr.hcl)"),
                    "\(version) \(declaresPlugins): \(run.output)")
                #expect(calls.count == 3, "\(calls)")
                #expect(calls.dropFirst().first == "init \(folder)", "\(calls)")
                #expect(calls.last?.hasPrefix("build ") == true && calls.last?.hasSuffix(folder) == true)
            }
        }
    }

    /// Kiln's own one-file template and its `plugins.pkr.hcl`: the same rule.
    @Test func kilnsOwnPluginsFileFollowsTheSameRule() throws {
        try withStandIn("moto") { moto in
            for version in ["1.6.6", "1.10.0"] { try Self.bakeKilnsOwn(moto: moto, version: version) }
        }
    }

    static func bakeKilnsOwn(moto: StandIn, version: String) throws {
        do {
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            try FileManager.default.copyItem(
                atPath: "\(TestPaths.repositoryRoot)/packer/plugins.pkr.hcl",
                toPath: project.folder.file("packer/plugins.pkr.hcl"))
            let packer = try FakePacker(in: project.folder.file("bin"), version: version)
            let run = try project.bake(environment: ["PATH": "\(packer.folder):/usr/local/bin:/usr/bin:/bin"])
            #expect(run.code == 69, "the fake build fails: \(run.output)")
            let calls = packer.calls
            if version == "1.6.6" {
                #expect(calls.count == 2, "\(calls)")
                #expect(calls.last?.hasSuffix(project.folder.file("packer/kiln.pkr.hcl")) == true, "\(calls)")
            } else {
                #expect(calls.count == 3, "\(calls)")
                let initialised = try #require(calls.dropFirst().first)
                #expect(initialised.hasPrefix("init ") && initialised.hasSuffix("/template"), "\(calls)")
                #expect(calls.last?.hasSuffix(String(initialised.dropFirst("init ".count))) == true, "\(calls)")
                #expect(run.output.contains("packer init (required_plugins in packer/plugins.pkr.hcl)"))
            }
        }
    }

    /// GitLab's `cache:` keeps paths relative to the project; Packer runs in
    /// the template's folder, so a relative PACKER_PLUGIN_PATH is made absolute.
    @Test func packerPluginPathReachesInitAndBuildAbsolute() throws {
        try withStandIn("moto") { moto in
            let project = try Self.teamProject(moto: moto, declaresPlugins: true)
            let packer = try FakePacker(in: project.folder.file("bin"), version: "1.10.0")
            let run = try project.bake(environment: [
                "PATH": "\(packer.folder):/usr/local/bin:/usr/bin:/bin", "PACKER_PLUGIN_PATH": ".packer.d/plugins",
            ])
            #expect(run.code == 69, "\(run.output)")
            let expected = "PACKER_PLUGIN_PATH=\(project.folder.file(".packer.d/plugins"))"
            #expect(packer.initEnvironment?.split(separator: "\n").contains { $0 == expected } == true)
            #expect(packer.buildEnvironment?.split(separator: "\n").contains { $0 == expected } == true)
            #expect(run.output.contains("plugins in \(expected)"), "\(run.output)")
        }
    }

    @Test func theVersionAndTheBlockAreRead() throws {
        #expect(PackerVersion.parse("Packer v1.10.0\n\nYour version of Packer is out of date!")?.parts == [1, 10, 0])
        #expect(PackerVersion.parse("Packer v1.6.6")?.supportsInit == false)
        #expect(PackerVersion([1, 10, 0]) > PackerVersion([1, 7]))
        #expect(PackerVersion([1, 7]).supportsInit)
        #expect(PackerPlugins.declaresRequiredPlugins(hcl: Self.requiredPlugins))
        #expect(!PackerPlugins.declaresRequiredPlugins(hcl: "packer {\n  required_version = \">= 1.7\"\n}\n"))
        #expect(!PackerPlugins.declaresRequiredPlugins(hcl: "# packer { required_plugins {} }\nbuild {}\n"))
        #expect(!PackerPlugins.declaresRequiredPlugins(hcl: "build {\n  required_plugins {\n  }\n}\n"))
    }
}
