import Bake
import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnHTTP
import KilnTestSupport

/// A project ready for kiln-bake against the moto stand-in: kiln.yml, the
/// shipped template and playbooks (the template without its Ansible
/// provisioner, which needs a connection to the builder, see
/// `templateWithoutProvisioners`), and an artifact with its build.json.
final class BakeProject: @unchecked Sendable {
    let folder = TemporaryDirectory("kiln-bake")
    let moto: StandIn
    var path: String { folder.path }
    let client: AWSClient

    /// One of moto's stock images, the only ones it reports with an EBS root
    /// device (everything made in moto says `standard`, which Packer refuses).
    let stockSource: String
    /// Pin the bake's source to `stockSource` (KILN_SOURCE_AMI).
    var pinSource = true

    init(moto: StandIn, kilnYML: String, template: String? = nil) throws {
        self.moto = moto
        client = Self.client(moto, region: "us-east-1")
        let stock = try client.describeImages(
            owners: ["099720109477"], filters: [("root-device-type", ["ebs"]), ("state", ["available"])])
        guard let first = stock.map(\.id).sorted().first else {
            throw KilnError.internalError("moto has no stock EBS image")
        }
        stockSource = first
        let manager = FileManager.default
        try manager.createDirectory(atPath: folder.file("packer"), withIntermediateDirectories: true)
        try manager.copyItem(
            atPath: "\(TestPaths.repositoryRoot)/packer/ansible", toPath: folder.file("packer/ansible"))
        try (template ?? Self.templateWithoutProvisioners()).write(
            toFile: folder.file("packer/kiln.pkr.hcl"), atomically: true, encoding: .utf8)
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        try writeBuild(content: "demo 1.0\n", version: "v1.0.0")
    }

    static func client(_ moto: StandIn, region: String) -> AWSClient {
        AWSClient(
            endpoints: AWSEndpoints(region: region, general: moto.url),
            credentials: .fixed(AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")),
            http: HTTPClient(settings: HTTPSettings()))
    }

    /// The shipped template with the block between `kiln:provisioners-begin`
    /// and `-end` taken out: with `communicator = "none"` nothing may
    /// connect to the builder (moto's made-up address), so Ansible cannot run.
    static func templateWithoutProvisioners() throws -> String {
        let text = try String(contentsOfFile: "\(TestPaths.repositoryRoot)/packer/kiln.pkr.hcl", encoding: .utf8)
        guard let begin = text.range(of: "# kiln:provisioners-begin"),
            let end = text.range(of: "# kiln:provisioners-end")
        else {
            throw KilnError.internalError("packer/kiln.pkr.hcl lacks the provisioner markers")
        }
        return text.replacingCharacters(in: begin.lowerBound..<end.upperBound, with: "")
    }

    /// An artifact and the build.json that names it.
    func writeBuild(content: String, version: String) throws {
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        let name = "kiln/demo-\(version).tar.gz"
        try Data(content.utf8).write(to: URL(fileURLWithPath: folder.file(name)))
        try writeBuildJSON(artifact: name, version: version)
    }

    /// build.json naming the artifact at `name` (in the project folder).
    func writeBuildJSON(artifact name: String, version: String) throws {
        let digest = try SHA256Digest.hex(ofFileAt: folder.file(name))
        let size = try FileManager.default.attributesOfItem(atPath: folder.file(name))[.size] as? Int ?? 0
        let json: [String: Any] = [
            "schema": "kiln.build", "version": 1, "producer": ["name": "kiln-build", "version": "test"],
            "createdAt": "2026-01-01T00:00:00Z", "application": "demo", "applicationVersion": version,
            "commit": String(repeating: "a", count: 40), "outcome": "passed",
            "artifact": ["path": name, "size": size, "sha256": digest, "kind": "tar.gz"],
            "commands": [],
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: folder.file("kiln/build.json")))
    }

    /// The environment a GitLab job would give, pointed at moto, with the
    /// proxy backstop: anything that ignored the endpoint would hit a closed
    /// loopback port instead of the internet.
    var environment: [String: String] {
        [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": folder.path, "CI_PROJECT_DIR": folder.path,
            "CI_PIPELINE_ID": "4242", "CI_PROJECT_NAME": "demo",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost",
        ].merging(pinSource ? ["KILN_SOURCE_AMI": stockSource] : [:]) { $1 }
    }

    func bake(
        _ arguments: [String] = [], environment extra: [String: String] = [:]
    ) throws -> (code: Int32?, output: String) {
        let run = try runProduct("kiln-bake", arguments, environment: environment.merging(extra) { $1 })
        return (run.code, run.output)
    }

    /// A bake with a fake `packer` that records the environment it was
    /// given and fails (nothing is launched): the run, and that environment.
    func bakeRecordingPackerEnvironment(
        _ extra: [String: String]
    ) throws -> (run: (code: Int32?, output: String), environment: String) {
        let dump = folder.file("packer-environment.txt")
        let fakePacker = folder.file("fake-packer")
        try "#!/bin/sh\nenv > \"\(dump)\"\nexit 1\n".write(toFile: fakePacker, atomically: true, encoding: .utf8)
        chmod(fakePacker, 0o755)
        let run = try bake(["--packer", fakePacker], environment: extra)
        return (run, try String(contentsOfFile: dump, encoding: .utf8))
    }

    func image() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("kiln/image.json")))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: folder.file(name), encoding: .utf8) }

    /// Registers an image of this account, tagged (moto: a `standard` root device).
    @discardableResult
    func registerImage(name: String, tags: [String: String] = [:]) throws -> String {
        let root = try client.query(
            .ec2, "RegisterImage",
            [
                "Name": name, "Architecture": "x86_64", "RootDeviceName": "/dev/sda1", "VirtualizationType": "hvm",
            ], mutation: .once)
        guard let id = root["imageId"]?.text else { throw KilnError.internalError("RegisterImage: no imageId") }
        if !tags.isEmpty { try client.createTags(resources: [id], tags: tags) }
        return id
    }

    func kilnImages(client: AWSClient? = nil) throws -> [MachineImage] {
        try (client ?? self.client).describeImages(owners: ["self"], filters: [("tag-key", ["kiln:bake-key"])])
    }

    func allInstances() throws -> [EC2Instance] { try client.describeInstances() }
}

/// kiln.yml for the tests: Packer talks to nothing but moto.
func kilnYML(_ extra: String = "") -> String {
    """
    application: demo
    bake:
      communicator: none
      instance_type: t3.micro
    \(extra)
    """
}
