import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, items 2 and 12: a template named by kiln.yml is read only from
/// the repository; an absolute path outside it, `..` out of it or a symbolic
/// link out of it is a bad configuration (78) naming the key. Before, the
/// host's file was read and rendered.
@Suite struct TemplatePathTests {
    @Test(arguments: ["/etc/hostname", "../../../../../etc/hostname", "deploy/link-out.sh"])
    func aTemplateOutsideTheRepositoryIsRefused(template: String) throws {
        let project = try UserDataProject(
            kilnYML: """
                environments:
                  test:
                    userdata:
                      template: \(template)
                """, templates: ["deploy/real.sh": "#!/bin/sh\necho hi\n"])
        try FileManager.default.createSymbolicLink(
            atPath: project.folder.file("deploy/link-out.sh"), withDestinationPath: "/etc/hostname")
        let (code, output) = try runUserData(project)
        #expect(code == 78, "\(output)")
        #expect(output.contains("environments.test.userdata"))
        #expect(output.contains("is not inside"))
        #expect(project.json().isEmpty, "nothing was rendered")
    }

    @Test func aFIFOAsTemplateIsNamedAndDoesNotHang() throws {
        let project = try UserDataProject(
            kilnYML: "environments:\n  test:\n    userdata:\n      template: deploy/fifo.sh\n",
            templates: ["deploy/x": ""])
        #expect(mkfifo(project.folder.file("deploy/fifo.sh"), 0o644) == 0)
        let (code, output) = try runUserData(project)
        #expect(code == 78, "\(output)")
        #expect(output.contains("FIFO"))
    }
}
