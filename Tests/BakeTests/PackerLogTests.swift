import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, the readable log: the bake log showed Packer's machine-readable
/// lines raw (`1796152506,,ui,say,==> amazon-ebs.kiln: ...`). Now the `ui`
/// lines are shown as Packer shows them to a person, inside the collapsed
/// `kiln_packer` section, and the machine-readable stream is kept only for
/// parsing. The fixtures are written by hand from Packer's "Machine-Readable
/// Output" (developer.hashicorp.com/packer/docs/commands): `ui` records with
/// `say`, `message` or `error` and the text, commas as `%!(PACKER_COMMA)`,
/// new lines as `\n`; provisioner output (Ansible's) as `ui,message` with the
/// build's name before it.
@Suite(.serialized) struct PackerLogTests {
    @Test func uiRecordsAreShownAsPackerShowsThemAndTheRestIsForParsingOnly() {
        let lines: [(String, String?)] = [
            (
                "1796152506,,ui,say,==> amazon-ebs.kiln: Launching a source AWS instance...",
                "==> amazon-ebs.kiln: Launching a source AWS instance..."
            ),
            (
                "1796152506,,ui,say,==> amazon-ebs.kiln: No volumes to clean up%!(PACKER_COMMA) skipping",
                "==> amazon-ebs.kiln: No volumes to clean up, skipping"
            ),
            (
                "1796152506,,ui,message,    amazon-ebs.kiln: TASK [kiln : install the release] ****",
                "    amazon-ebs.kiln: TASK [kiln : install the release] ****"
            ),
            (
                "1796152506,,ui,message,    amazon-ebs.kiln: ok: [default] => {\\n    amazon-ebs.kiln:     \"msg\": "
                    + "\"one%!(PACKER_COMMA) two\"\\n    amazon-ebs.kiln: }",
                "    amazon-ebs.kiln: ok: [default] => {\n    amazon-ebs.kiln:     \"msg\": \"one, two\"\n"
                    + "    amazon-ebs.kiln: }"
            ),
            (
                "1796152506,,ui,error,Build 'amazon-ebs.kiln' errored: Error launching source instance: "
                    + "UnauthorizedOperation: You are not authorized\\n\tstatus code: 403%!(PACKER_COMMA) "
                    + "request id: x",
                "Build 'amazon-ebs.kiln' errored: Error launching source instance: "
                    + "UnauthorizedOperation: You are not authorized\n\tstatus code: 403, request id: x"
            ),
            ("1796152506,amazon-ebs.kiln,error,Error launching source instance", nil),
            ("1796152506,amazon-ebs.kiln,artifact,0,id,us-east-1:ami-0aaa1111bbbb2222c", nil),
            ("1796152506,,error-count,1", nil),
            ("1796152506,,ui,say", nil),
            ("panic: runtime error: invalid memory address", "panic: runtime error: invalid memory address"),
        ]
        for (line, shown) in lines {
            #expect(PackerRecord.humanText(Substring(line)) == shown, "\(line)")
        }
    }

    /// Real Packer 1.6.6 against moto, with a local provisioner that runs
    /// real Ansible (`-c local`: nothing connects to moto's made-up address),
    /// so Ansible's output reaches the log through Packer's `ui,message` lines.
    @Test func aRealBakeLogShowsPackersAndAnsiblesLinesAsAPersonSeesThem() throws {
        try withStandIn("moto") { moto in
            let template = try BakeProject.templateWithoutProvisioners().replacingOccurrences(
                of: "sources = [\"source.amazon-ebs.kiln\"]",
                with: """
                    sources = ["source.amazon-ebs.kiln"]
                      provisioner "shell-local" {
                        inline = ["ansible-playbook -i localhost, -c local ${path.root}/local.yml"]
                      }
                    """)
            let project = try BakeProject(moto: moto, kilnYML: kilnYML(), template: template)
            try """
            - hosts: localhost
              gather_facts: false
              tasks:
                - name: say hello
                  debug:
                    msg: "kiln, ansible"

            """.write(toFile: project.folder.file("packer/local.yml"), atomically: true, encoding: .utf8)
            let run = try project.bake(environment: ["GITLAB_CI": "true", "ANSIBLE_NOCOLOR": "1"])
            #expect(run.code == 0, "\(run.output)")
            let log = run.output
            let lines = log.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            // Packer 1.6.6's own words, as its human-readable mode prints them.
            #expect(lines.contains("==> amazon-ebs.kiln: Launching a source AWS instance..."), "\(log)")
            #expect(lines.contains { $0.hasPrefix("==> amazon-ebs.kiln: Creating AMI ") }, "\(log)")
            // Ansible's lines, through Packer's provisioner output.
            #expect(lines.contains { $0.contains("amazon-ebs.kiln: TASK [say hello]") }, "\(log)")
            #expect(lines.contains { $0.contains("\"msg\": \"kiln, ansible\"") }, "the comma unescaped: \(log)")
            // No machine-readable record reaches the log.
            let record = /^[0-9]+,[^,]*,(ui|artifact|artifact-count|error-count|error),/
            let raw = lines.filter { $0.firstMatch(of: record) != nil }
            #expect(raw.isEmpty, "machine-readable lines in the log: \(raw.prefix(3))")
            #expect(!log.contains("%!(PACKER_COMMA)"))
            // Inside the collapsed section.
            let start = try #require(log.range(of: ":kiln_packer[collapsed=true]\r"), "\(log)")
            let end = try #require(log.range(of: ":kiln_packer\r", range: start.upperBound..<log.endIndex))
            let inside = log[start.upperBound..<end.lowerBound]
            #expect(inside.contains("==> amazon-ebs.kiln: Launching a source AWS instance..."))
            #expect(inside.contains("TASK [say hello]"))
            // The artifact was still parsed from the machine-readable stream.
            #expect(try project.image()["outcome"] as? String == "baked")
        }
    }
}
