import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, item 2: what kiln.yml tells kiln-build to pack lies in the
/// project; `/etc` or a path out of it is a bad configuration naming the key,
/// and nothing is written. Before, `/etc/passwd` was packed and baked.
@Suite struct PackagePathTests {
    @Test(arguments: [
        ("paths: [/etc]", "build.package.paths"), ("file: /etc/passwd", "build.package.file"),
        ("file: ../../../../etc/passwd", "build.package.file"), ("paths: [link-out]", "build.package.paths"),
    ])
    func aPathOutOfTheProjectIsRefused(package: String, key: String) throws {
        let project = try SampleProject(
            kilnYML: """
                application: demo
                build:
                  commands: ["true"]
                  package: {\(package)}
                """)
        try FileManager.default.createSymbolicLink(atPath: project.folder.file("link-out"), withDestinationPath: "/etc")
        let (code, output) = try runBuild(project)
        #expect(code == 78, "\(output)")
        #expect(output.contains(key) && output.contains("is not inside"), "\(output)")
        let names = try FileManager.default.contentsOfDirectory(atPath: project.folder.file("kiln")).sorted()
        #expect(!names.contains { $0.hasSuffix(".tar.gz") }, "\(names)")
    }
}
