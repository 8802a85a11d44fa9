import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, item 3: a team's template is usually a folder of several
/// `.pkr.hcl` files. Before, the bake key hashed one file, so a folder could
/// not be baked. Real Packer 1.6.6 builds the folder against moto; the key
/// covers each of its files, and image.json says which files it covers.
@Suite(.serialized) struct TemplateFolderTests {
    /// Kiln's template (without its provisioners) split the usual way.
    static func threeFiles() throws -> [(name: String, text: String)] {
        let text = try BakeProject.templateWithoutProvisioners()
        guard let source = text.range(of: "source \"amazon-ebs\" \"kiln\""), let build = text.range(of: "\nbuild {")
        else { throw KilnError.internalError("the template's source or build block is missing") }
        return [
            ("variables.pkr.hcl", String(text[..<source.lowerBound])),
            ("sources.pkr.hcl", String(text[source.lowerBound..<build.lowerBound])),
            ("build.pkr.hcl", String(text[build.lowerBound...])),
        ]
    }

    @Test func aThreeFileFolderBakesAndItsKeyFollowsEachFileAndNothingElse() throws {
        try withStandIn("moto") { moto in
            let yml = kilnYML("  template: packer/team\n  playbooks: packer/ansible")
            let project = try BakeProject(moto: moto, kilnYML: yml)
            let folder = project.folder.file("packer/team")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let files = try Self.threeFiles()
            for file in files {
                try file.text.write(toFile: "\(folder)/\(file.name)", atomically: true, encoding: .utf8)
            }
            try "# team notes\n".write(toFile: project.folder.file("NOTES.md"), atomically: true, encoding: .utf8)

            let first = try project.bake()
            #expect(first.code == 0, "\(first.output)")
            let image = try project.image()
            #expect(image["outcome"] as? String == "baked")
            let key = try #require(image["bakeKey"] as? String)
            let inputs = try #require(image["bakeInputs"] as? [String], "image.json says which files the key covers")
            for file in files { #expect(inputs.contains("packer/team/\(file.name)"), "\(inputs)") }
            #expect(inputs.contains("packer/ansible/app.yml"), "\(inputs)")
            #expect(inputs.contains("kiln/demo-v1.0.0.tar.gz"), "\(inputs)")
            #expect(!inputs.contains("NOTES.md") && !inputs.contains("kiln.yml"))

            // An unrelated file of the repository: the same key, reused.
            try "# team notes, changed\n".write(
                toFile: project.folder.file("NOTES.md"), atomically: true, encoding: .utf8)
            let unrelated = try project.bake()
            #expect(unrelated.code == 0, "\(unrelated.output)")
            #expect(try project.image()["outcome"] as? String == "reused")
            #expect(try project.image()["bakeKey"] as? String == key)

            // Each of the three files: a new key, a new bake.
            var keys: Set<String> = [key]
            for file in files {
                try (file.text + "\n# changed\n").write(
                    toFile: "\(folder)/\(file.name)", atomically: true, encoding: .utf8)
                // Image names carry the time to the second, and moto bakes in
                // less: the next bake is in the next second, or Packer refuses
                // the name as taken.
                Thread.sleep(forTimeInterval: 1.1)
                let changed = try project.bake()
                #expect(changed.code == 0, "\(file.name): \(changed.output)")
                let result = try project.image()
                #expect(result["outcome"] as? String == "baked", "\(file.name) changed, yet \(result)")
                let newKey = try #require(result["bakeKey"] as? String)
                #expect(!keys.contains(newKey), "\(file.name) changed, yet the key is one seen before")
                keys.insert(newKey)
            }
        }
    }

    @Test func aFolderWithoutPackerFilesIsABadConfiguration() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML("  template: packer/empty"))
            try FileManager.default.createDirectory(
                atPath: project.folder.file("packer/empty"), withIntermediateDirectories: true)
            let run = try project.bake()
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains("packer/empty"))
            #expect(run.output.contains("no *.pkr.hcl"))
        }
    }
}
