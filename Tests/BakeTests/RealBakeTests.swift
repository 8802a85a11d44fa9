import Bake
import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// Issue 15, item 3: the real bake. The shipped template, its SSH
/// communicator and Ansible provisioner untouched, against moto's instance
/// bodies (`scripts/standin moto --bodies`): Packer launches a body from a
/// stock Ubuntu image, SSHes to its private 127.x address, Ansible runs the
/// playbook over SSH (its apt reaching only the local package repository,
/// `scripts/standin apt-repo`), and CreateImage stores the body's tree as the
/// AMI. Before the template went straight to sshd (`use_proxy = false`),
/// Packer 1.6.6's proxy offered only ssh-rsa and OpenSSH 9.2 refused it.
@Suite(.serialized) struct RealBakeTests {
    @Test func anAppBakeInstallsTheArtifactAndItsUnitAndItsInstancesServeIt() throws {
        try BodiesWorld.with(subnet: "127.0.232.0/24") { world in
            let project = try world.project()
            try project.writeBuild(
                files: ["bin/demo": world.server(answer: "demo v1.0.0 from the baked tree")], version: "v1.0.0")
            let result = try project.bake()
            #expect(result.code == 0, "\(result.output)")
            #expect(result.output.contains("TASK [Enable the service"), "the playbook did not run:\n\(result.output)")
            // Packer's file provisioner uploaded the artifact ("Uploading SRC => DST", its ui line), and the
            // playbook installed that upload rather than copying the artifact itself.
            #expect(
                result.output.contains("kiln/demo-v1.0.0.tar.gz => /tmp/demo-v1.0.0.tar.gz"),
                "the file provisioner did not upload the artifact:\n\(result.output)")
            #expect(result.output.contains("TASK [Install the artifact the file provisioner uploaded]"))
            let ami = try #require(try project.image()["amiID"] as? String)

            let instance = try world.launch(ami)
            let tree = try world.tree(of: instance.id)
            #expect(!FileManager.default.fileExists(atPath: "\(tree)/tmp/demo-v1.0.0.tar.gz"), "the upload was kept")
            // current -> /opt/demo/releases/v1.0.0, an absolute link: followed inside the tree.
            let release = try FileManager.default.destinationOfSymbolicLink(atPath: "\(tree)/opt/demo/current")
            #expect(release == "/opt/demo/releases/v1.0.0")
            let installed = try String(contentsOfFile: "\(tree)\(release)/bin/demo", encoding: .utf8)
            #expect(installed.contains("demo v1.0.0 from the baked tree"))
            let unit = try String(contentsOfFile: "\(tree)/etc/systemd/system/demo.service", encoding: .utf8)
            #expect(unit.contains("ExecStart=/opt/demo/current/bin/demo") && unit.contains("User=demo"))
            let wanted = "\(tree)/etc/systemd/system/multi-user.target.wants/demo.service"
            #expect(
                (try? FileManager.default.destinationOfSymbolicLink(atPath: wanted))
                    == "/etc/systemd/system/demo.service", "the unit is not enabled")
            // The instance runs what the bake installed: the enabled unit, as its user.
            let answer = try world.waitForAnswer("http://\(instance.address):8080/")
            #expect(answer == "demo v1.0.0 from the baked tree\n")
        }
    }

    @Test func aBaseBakeRunsBaseYML() throws {
        try BodiesWorld.with(subnet: "127.0.233.0/24") { world in
            let project = try world.project()
            project.pinSource = false
            let result = try project.bake(["--role", "base"])
            #expect(result.code == 0, "\(result.output)")
            #expect(!result.output.contains("Uploading"), "the base role has no artifact to upload")
            let ami = try #require(try project.image()["amiID"] as? String)
            let tree = try world.tree(of: try world.launch(ami).id)
            let periodic = try String(contentsOfFile: "\(tree)/etc/apt/apt.conf.d/20auto-upgrades", encoding: .utf8)
            #expect(periodic.contains("APT::Periodic::Unattended-Upgrade \"1\";"))
            let status = try String(contentsOfFile: "\(tree)/var/lib/dpkg/status", encoding: .utf8)
            for package in ["unattended-upgrades", "awscli", "curl", "jq", "unzip"] {
                #expect(
                    status.contains("Package: \(package)\nStatus: install ok installed"), "\(package) not installed")
            }
            #expect(FileManager.default.isExecutableFile(atPath: "\(tree)/usr/bin/aws"), "no AWS CLI")
            // Debian has no snapd: the snap tasks were skipped, not failed.
            #expect(result.output.contains("Install the AWS CLI elsewhere (Debian's awscli package)"))
        }
    }
}

/// The world of a real bake: the local package repository and moto with
/// instance bodies, a 127.0.0.0/16 VPC with one subnet of its own (so that
/// bodies of tests running beside it never share an address).
struct BodiesWorld {
    let moto: StandIn
    let client: AWSClient
    let subnetID: String
    let http = HTTPClient(settings: HTTPSettings())

    static func with(subnet cidr: String, _ body: (BodiesWorld) throws -> Void) throws {
        let repository = try StandIn("apt-repo")
        defer { repository.stop() }
        // A first start cleans what a crashed stand-in left (scripts/standins/bodies.py): give it time.
        let moto = try StandIn("moto", ["--bodies", "--apt-repo", repository.url], readyTimeout: 300)
        defer { moto.stop() }
        let client = BakeProject.client(moto, region: "us-east-1")
        let vpc = try client.query(.ec2, "CreateVpc", ["CidrBlock": "127.0.0.0/16"], mutation: .once)
        let vpcID = try #require(vpc.path("vpc", "vpcId")?.text)
        let subnet = try client.query(
            .ec2, "CreateSubnet", ["VpcId": vpcID, "CidrBlock": cidr], mutation: .once)
        let subnetID = try #require(subnet.path("subnet", "subnetId")?.text)
        try body(BodiesWorld(moto: moto, client: client, subnetID: subnetID))
    }

    /// A project whose bake uses the shipped template as it is, in this world's subnet.
    func project() throws -> BakeProject {
        let template = try String(contentsOfFile: "\(TestPaths.repositoryRoot)/packer/kiln.pkr.hcl", encoding: .utf8)
        return try BakeProject(
            moto: moto,
            kilnYML: """
                application: demo
                bake:
                  instance_type: t3.micro
                  subnet: \(subnetID)
                """, template: template)
    }

    /// A tiny HTTP server (Python, as the image has it) answering `answer` on 0.0.0.0:8080
    /// (the body's own address: scripts/standins/README.md, "Bodies").
    func server(answer: String) -> String {
        """
        #!/usr/bin/python3
        import http.server
        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"\(answer)\\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        http.server.HTTPServer(("0.0.0.0", 8080), Answer).serve_forever()

        """
    }

    func launch(_ ami: String) throws -> (id: String, address: String) {
        let root = try client.query(
            .ec2, "RunInstances",
            ["ImageId": ami, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.micro", "SubnetId": subnetID],
            mutation: .once)
        let item = try #require(root.path("instancesSet", "item"))
        return (try #require(item.string("instanceId")), try #require(item.string("privateIpAddress")))
    }

    /// The body's root on this machine (GET bodies_url/ID, which waits for the launch to be done).
    func tree(of instance: String) throws -> String {
        let url = "\(moto["bodies_url"] as? String ?? "")/\(instance)"
        let response = try http.send(HTTPRequest(url: url, timeout: 300))
        let state = try JSONSerialization.jsonObject(with: response.body) as? [String: Any]
        return try #require(state?["tree"] as? String, "no tree for \(instance): \(state ?? [:])")
    }

    /// The first answer of a service that is starting: boot, cloud-init, then the enabled units.
    func waitForAnswer(_ url: String) throws -> String {
        var last = ""
        for _ in 0..<120 {
            do {
                let response = try http.send(HTTPRequest(url: url, connectTimeout: 2, timeout: 5))
                if response.status == 200 { return String(decoding: response.body, as: UTF8.self) }
                last = "HTTP \(response.status)"
            } catch {
                last = "\(error)"
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        throw KilnError.internalError("\(url) never answered 200 (last: \(last))")
    }
}

extension BakeProject {
    /// A real tar.gz of `files` (path in the archive: content, executable) and the build.json that names it.
    func writeBuild(files: [String: String], version: String) throws {
        let staging = folder.file("artifact-\(version)")
        for (path, content) in files {
            let file = "\(staging)/\(path)"
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o755)
        }
        try FileManager.default.createDirectory(atPath: folder.file("kiln"), withIntermediateDirectories: true)
        let name = "kiln/demo-\(version).tar.gz"
        let runner = ProcessRunner(
            log: LogWriter(sink: FileDescriptorSink.standardError, style: .plain, secrets: SecretMask()),
            cancellation: Cancellation())
        _ = try runner.check(
            Command("tar", ["-czf", folder.file(name), "-C", staging] + files.keys.sorted()),
            what: "tar", failure: .internalError, output: .capture)
        try writeBuildJSON(artifact: name, version: version)
    }
}
