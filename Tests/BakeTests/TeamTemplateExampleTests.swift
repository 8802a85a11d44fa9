import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, done when: a team's own multi-file template bakes with the
/// five-line kiln.yml the README documents. The test reads the README's
/// example (after `<!-- kiln:team-template-example -->`), makes exactly its
/// layout (Kiln's template split into the three files, the playbooks in
/// packer/ansible) and bakes with real Packer 1.6.6 against moto. The one
/// setting added is the stand-in's: `KILN_PACKER_COMMUNICATOR=none`, so
/// that nothing connects to moto's made-up address.
@Suite(.serialized) struct TeamTemplateExampleTests {
    /// The README's layout lines and its kiln.yml.
    static func readmeExample() throws -> (files: [String], kilnYML: String) {
        let readme = try String(contentsOfFile: "\(TestPaths.repositoryRoot)/README.md", encoding: .utf8)
        let marker = try #require(readme.range(of: "<!-- kiln:team-template-example -->"))
        let after = readme[marker.upperBound...]
        let layoutStart = try #require(after.range(of: "```text\n"))
        let layoutEnd = try #require(after.range(of: "```", range: layoutStart.upperBound..<after.endIndex))
        let files = after[layoutStart.upperBound..<layoutEnd.lowerBound].split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map(String.init)
        }
        let ymlStart = try #require(after.range(of: "```yaml\n", range: layoutEnd.upperBound..<after.endIndex))
        let ymlEnd = try #require(after.range(of: "```", range: ymlStart.upperBound..<after.endIndex))
        return (files, String(after[ymlStart.upperBound..<ymlEnd.lowerBound]))
    }

    @Test func theREADMEsFiveLineKilnYMLBakesItsLayout() throws {
        let example = try Self.readmeExample()
        #expect(example.kilnYML.split(separator: "\n").count == 5, "\(example.kilnYML)")
        let split = try TemplateFolderTests.threeFiles()
        #expect(
            example.files == split.map { "packer/\($0.name)" } + ["packer/ansible/app.yml"],
            "the README's layout: \(example.files)")
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: example.kilnYML)
            // BakeProject's one-file template is not part of this layout.
            try FileManager.default.removeItem(atPath: project.folder.file("packer/kiln.pkr.hcl"))
            for file in split {
                try file.text.write(
                    toFile: project.folder.file("packer/\(file.name)"), atomically: true, encoding: .utf8)
            }
            for file in example.files {
                #expect(FileManager.default.fileExists(atPath: project.folder.file(file)), "\(file)")
            }
            let run = try project.bake(environment: ["KILN_PACKER_COMMUNICATOR": "none"])
            #expect(run.code == 0, "\(run.output)")
            let image = try project.image()
            #expect(image["outcome"] as? String == "baked")
            let inputs = try #require(image["bakeInputs"] as? [String])
            for file in split { #expect(inputs.contains("packer/\(file.name)"), "\(inputs)") }
            #expect(inputs.contains("packer/ansible/app.yml"), "\(inputs)")
            let ami = try #require(image["amiID"] as? String)
            #expect(try project.client.describeImages(imageIDs: [ami]).first?.state == "available")
        }
    }
}
