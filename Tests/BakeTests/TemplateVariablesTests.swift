import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 18, item 4: Packer only warns about a variable the template does not
/// declare (and says nothing from 1.8.5: packer issue 12104), yet
/// `bake.variables` went into the bake key: the README's own
/// `variables: {volume_size: "16"}` names a variable Kiln's template does not
/// declare, so a typo changed the key and nothing else. An undeclared
/// variable is now refused (78) before anything is launched.
@Suite(.serialized) struct TemplateVariablesTests {
    @Test func theTemplatesTopLevelVariableBlocksAreRead() throws {
        let text = """
            # variable "in_a_comment" {}
            // variable "in_a_line_comment" {}
            /* variable "in_a_block_comment" {
            } */
            variable "region" {
              type = string
              description = "a brace in a string: } { and a \\"quote\\""
            }
            variable "ami_name" { default = "x" }
            variables {
              volume_size = "16"
              encrypted   = true
            }
            locals {
              script = <<EOF
            variable "in_a_heredoc" {}
            EOF
            }
            source "amazon-ebs" "kiln" {
              dynamic "variable" { }
            }
            variable   "spaced"   {
            }
            """
        let declared = try TemplateVariables.declared(inHCL: text, file: "t.pkr.hcl")
        #expect(declared.sorted() == ["ami_name", "encrypted", "region", "spaced", "volume_size"])
        #expect(try TemplateVariables.declared(inJSON: Data(#"{"variable": {"a": {}, "b": {}}}"#.utf8)) == ["a", "b"])
        #expect(
            try TemplateVariables.declared(inJSON: Data(#"{"variables": {"c": ""}, "builders": []}"#.utf8)) == ["c"])
    }

    @Test func anUndeclaredVariableIsRefusedNamingItAndTheTemplate() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML("  variables: {volume_size: \"16\"}"))
            let run = try project.bake()
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains("bake.variables.volume_size"))
            #expect(run.output.contains("kiln.yml:5"), "the line of kiln.yml: \(run.output)")
            #expect(run.output.contains("packer/kiln.pkr.hcl"), "the template is named")
            #expect(!run.output.contains("packer build"), "nothing ran")
            #expect(try project.kilnImages().isEmpty)
        }
    }

    @Test func aDeclaredVariableBakes() throws {
        try withStandIn("moto") { moto in
            let template =
                try BakeProject.templateWithoutProvisioners()
                + "\nvariable \"volume_size\" {\n  type = string\n  default = \"8\"\n}\n"
            let project = try BakeProject(
                moto: moto, kilnYML: kilnYML("  variables: {volume_size: \"16\"}"), template: template)
            let run = try project.bake()
            #expect(run.code == 0, "\(run.output)")
            #expect(try project.image()["outcome"] as? String == "baked")
        }
    }
}
