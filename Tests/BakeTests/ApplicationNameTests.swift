import Bake
import Build
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// One rule for the application's name in every stage (issue 12):
/// `KILN_APPLICATION`, else kiln.yml's `application`, else `CI_PROJECT_NAME`.
/// Before, the bake and prune read kiln.yml first, so with
/// `KILN_APPLICATION` set, prune filtered images under another name than
/// the build and the bake used.
@Suite struct ApplicationNameTests {
    func settings(
        _ environment: [String: String], kilnYML: String, in folder: TemporaryDirectory
    ) throws -> (Settings, String) {
        try FileManager.default.createDirectory(atPath: folder.file("packer"), withIntermediateDirectories: true)
        try "# template\n".write(toFile: folder.file("packer/kiln.pkr.hcl"), atomically: true, encoding: .utf8)
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        let job = JobContext(environment: environment.merging(["CI_PROJECT_DIR": folder.path]) { $1 })
        return (Settings(job: job, file: try ConfigFile.load(flag: nil, job: job)), folder.path)
    }

    func names(_ environment: [String: String], kilnYML: String) throws -> (build: String, bake: String) {
        let project = TemporaryDirectory("kiln-application")
        let (settings, folder) = try settings(
            environment, kilnYML: kilnYML + "build:\n  test: 'true'\n  package: {paths: [app]}\n", in: project)
        let build = try BuildConfiguration.load(settings).application
        let bake = try BakeConfiguration.load(
            settings, flags: BakeFlags(), projectDirectory: folder, executablePath: nil
        ).application
        return (build, bake)
    }

    @Test func theVariableBeatsKilnYMLWhichBeatsTheProjectName() throws {
        let all = try names(
            ["KILN_APPLICATION": "from-variable", "CI_PROJECT_NAME": "from-project"],
            kilnYML: "application: from-file\n")
        #expect(all.build == "from-variable" && all.bake == "from-variable")
        let file = try names(["CI_PROJECT_NAME": "from-project"], kilnYML: "application: from-file\n")
        #expect(file.build == "from-file" && file.bake == "from-file")
        let project = try names(["CI_PROJECT_NAME": "from-project"], kilnYML: "")
        #expect(project.build == "from-project" && project.bake == "from-project")
    }
}

/// Issue 13, item 2: a Packer template or playbook folder kiln.yml names lies
/// in the repository (78 otherwise, naming the key); a flag may name any.
@Suite struct BakePathTests {
    @Test(arguments: ["bake:\n  template: /etc/hostname\n", "bake:\n  playbooks: ../../../../etc\n"])
    func kilnYMLPathsOutOfTheRepositoryAreRefused(yml: String) throws {
        let folder = TemporaryDirectory("kiln-bake-paths")
        try FileManager.default.createDirectory(atPath: folder.file("packer"), withIntermediateDirectories: true)
        try "# template\n".write(toFile: folder.file("packer/kiln.pkr.hcl"), atomically: true, encoding: .utf8)
        try ("application: demo\n" + yml).write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        let job = JobContext(environment: ["CI_PROJECT_DIR": folder.path])
        let settings = Settings(job: job, file: try ConfigFile.load(flag: nil, job: job))
        #expect(
            expectExit(.badConfiguration) {
                _ = try BakeConfiguration.load(
                    settings, flags: BakeFlags(), projectDirectory: folder.path, executablePath: nil)
            } == nil)
    }

    @Test func aFlagMayNameATemplateAnywhere() throws {
        let folder = TemporaryDirectory("kiln-bake-paths")
        let elsewhere = TemporaryDirectory("kiln-bake-elsewhere")
        try "# template\n".write(toFile: elsewhere.file("team.pkr.hcl"), atomically: true, encoding: .utf8)
        try "application: demo\n".write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        let job = JobContext(environment: ["CI_PROJECT_DIR": folder.path])
        let settings = Settings(job: job, file: try ConfigFile.load(flag: nil, job: job))
        let configuration = try BakeConfiguration.load(
            settings, flags: BakeFlags(template: elsewhere.file("team.pkr.hcl")), projectDirectory: folder.path,
            executablePath: nil)
        #expect(configuration.template.path == elsewhere.file("team.pkr.hcl"))
    }
}
