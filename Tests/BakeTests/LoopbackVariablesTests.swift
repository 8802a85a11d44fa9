import Bake
import Foundation
import KilnTestSupport
import Testing

/// Issue 15, item 3: a loopback world's instance bodies listen only on their
/// private 127.x address, so kiln-bake tells the template to SSH there and to
/// ask for no public address; against AWS it says nothing, and the template's
/// null defaults leave Packer's own behaviour.
@Suite struct LoopbackVariablesTests {
    @Test func aStandInOnLoopbackGetsThePrivateAddressAndNoPublicOne() {
        for endpoint in ["http://127.0.0.1:4566", "http://127.0.3.7:80/", "http://localhost:5000"] {
            #expect(
                PackerRun.loopbackVariables(ec2Endpoint: endpoint) == [
                    "ssh_interface": .string("private_ip"), "associate_public_ip_address": .bool(false),
                ], "\(endpoint)")
        }
    }

    @Test func awsAndOtherHostsGetNothing() {
        for endpoint in [
            "", "https://ec2.us-east-1.amazonaws.com", "http://10.0.0.5:4566", "http://127.example.com:80",
            "http://1270.0.0.1:80",
        ] {
            #expect(PackerRun.loopbackVariables(ec2Endpoint: endpoint).isEmpty, "\(endpoint)")
        }
    }

    @Test func theShippedTemplateDeclaresThem() throws {
        let template = try PackerTemplate(
            path: "\(TestPaths.repositoryRoot)/packer/kiln.pkr.hcl", origin: "packer/kiln.pkr.hcl")
        let declared = try TemplateVariables.declared(in: template)
        for name in PackerRun.loopbackVariables(ec2Endpoint: "http://127.0.0.1:1").keys {
            #expect(declared.contains(name), "packer/kiln.pkr.hcl does not declare \(name)")
        }
    }
}
