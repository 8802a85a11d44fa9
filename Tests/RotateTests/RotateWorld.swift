import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnHTTP
import KilnTestSupport

/// moto with the world Terraform would make, the fleet simulator answering
/// health on each instance's 127.0.x.y address, and a project folder holding
/// the bake's image.json and the rendered user data for a new release.
final class RotateWorld: @unchecked Sendable {
    let moto: StandIn
    let fleet: StandIn
    let outputs: [String: Any]
    let client: AWSClient
    let project = TemporaryDirectory("kiln-rotate")
    var healthPort: Int { fleet["health_port"] as? Int ?? 0 }

    init(desired: Int = 2, environments: String = "test") throws {
        moto = try StandIn("moto")
        fleet = try StandIn("fleet", ["--endpoint", moto.url, "--poll", "0.1"])
        outputs = try StandIn.runOnce(
            "world",
            [
                "--endpoint", moto.url, "--desired", String(desired), "--environments", environments,
                "--health-port", String(fleet["health_port"] as? Int ?? 0), "--boot-delay", "0",
            ])
        client = AWSClient(
            endpoints: AWSEndpoints(region: "us-east-1", general: moto.url),
            credentials: .fixed(AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")),
            http: HTTPClient(settings: HTTPSettings()),
            retry: RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.05))
    }

    deinit {
        fleet.stop()
        moto.stop()
    }

    func output(_ name: String) -> String { (outputs[name] as? [String: Any])?["value"] as? String ?? "" }
    var group: String { output("test_asg_name") }
    var appAMI: String { output("app_ami_id") }

    /// A new AMI whose instances answer health as `health` says
    /// (`healthy`, `never`, `flap`), after `bootDelay` seconds.
    /// A copy of the app AMI whose instances the fleet answers as `health`
    /// says; `failProbes` ("3", "3,4") are the probes, from 1 after the boot
    /// delay, it answers 503 (`kiln:fleet-fail-probes`).
    func makeAMI(
        health: String, bootDelay: Double = 0.5, flapPeriod: Double = 1, failProbes: String? = nil
    ) throws
        -> String
    {
        let copy = try client.copyImage(
            sourceImageID: appAMI, sourceRegion: "us-east-1", name: "demo-\(health)-\(UUID().uuidString.prefix(8))")
        try client.createTags(
            resources: [copy],
            tags: [
                "kiln:fleet-health": health, "kiln:fleet-boot-delay": String(bootDelay),
                "kiln:fleet-flap-period": String(flapPeriod),
                "kiln:app": "demo", "kiln:role": "app",
            ].merging(failProbes.map { ["kiln:fleet-fail-probes": $0] } ?? [:]) { $1 })
        return copy
    }

    /// kiln.yml, image.json and userdata-test.json for a release of `ami`.
    func prepare(
        ami: String, rotate: String = "", userData: String = "#!/bin/sh\necho hello\n", version: String = "v2.0.0"
    ) throws {
        try """
        environments:
          test:
            rotate:
              auto_scaling_group: \(group)
              batch: 2
              health:
                url: http://{private_ip}:\(healthPort)/health
                poll: 0.2s
                consecutive: 2
                timeout: 20s
        \(rotate)
        """.write(toFile: project.file("kiln.yml"), atomically: true, encoding: .utf8)
        let store = ArtifactStore(directory: project.file("kiln"), producer: Producer(name: "test"))
        try store.write(
            ImageResult(
                application: "demo", applicationVersion: version, commit: String(repeating: "a", count: 40), role: .app,
                name: "demo-app-\(version)", region: "us-east-1", amiID: ami, amis: ["us-east-1": ami],
                sourceAMI: appAMI,
                bakeKey: "k", outcome: .baked, packerSeconds: 1, pipelineID: "7"))
        try AtomicFile.write(Data(userData.utf8), to: project.file("kiln/userdata-test.sh"))
        try store.write(
            UserDataResult(
                environment: "test", format: .shell, gzip: false, path: "kiln/userdata-test.sh",
                size: userData.utf8.count,
                sha256: SHA256Digest.hex(of: Data(userData.utf8)), templates: ["t"], variables: [], amiID: ami),
            fileName: "userdata-test.json")
    }

    var environment: [String: String] {
        [
            "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": project.path,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true", "CI_PIPELINE_ID": "7", "CI_JOB_ID": "70",
            "NO_PROXY": "127.0.0.1,localhost",
        ]
    }

    func rotate(
        _ arguments: [String] = [], environment extra: [String: String] = [:]
    ) throws -> (code: Int32?, output: String) {
        var environment = self.environment
        environment.merge(extra) { $1 }
        let run = try runProduct("kiln-rotate", arguments + ["--environment", "test"], environment: environment)
        return (run.code, run.output)
    }

    func groupState() throws -> AutoScalingGroup {
        try client.describeAutoScalingGroups(names: [group]).first!
    }

    func imagesOfGroup() throws -> [String] {
        let ids = try groupState().instances.map(\.id)
        return try client.describeInstances(instanceIDs: ids).map(\.imageID).sorted()
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: project.file(name), encoding: .utf8) }

    var rotation: [String: Any] {
        guard let data = FileManager.default.contents(atPath: project.file("kiln/rotation-test.json")) else {
            return [:]
        }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}

/// Samples, in the background, how many of the group's instances answer
/// health 200 on their own address, while a rotation runs.
final class HealthSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Int] = []
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(world: RotateWorld) {
        let http = HTTPClient(settings: HTTPSettings())
        let client = world.client
        let group = world.group
        let port = world.healthPort
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                if let state = try? client.describeAutoScalingGroups(names: [group]).first {
                    let ids = state.instances.filter { $0.lifecycleState == "InService" }.map(\.id)
                    let instances = (try? client.describeInstances(instanceIDs: ids)) ?? []
                    let healthy = instances.filter { instance in
                        guard let ip = instance.privateIPAddress, instance.state == "running" else { return false }
                        return
                            (try? http.send(
                                HTTPRequest(url: "http://\(ip):\(port)/health", connectTimeout: 1, timeout: 1)
                            ).status) == 200
                    }.count
                    lock.withLock { samples.append(healthy) }
                }
                usleep(50_000)
            }
            done.signal()
        }
    }

    func stop() -> [Int] {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { samples }
    }
}
