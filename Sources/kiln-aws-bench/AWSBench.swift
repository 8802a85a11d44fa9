import ArgumentParser
import Foundation
import KilnAWS
import KilnCore
import KilnHTTP

/// `kiln-aws-bench`: runs scripts/bench/aws.py's fixed sequence of AWS calls with
/// Kiln's client in one process and prints each call's duration as JSON.
/// A benchmark helper, not a stage: it only ever talks to the endpoint given
/// (the driver gives moto on loopback).
@main
struct AWSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-aws-bench",
        abstract: "Time a fixed sequence of AWS calls made with Kiln's client (for scripts/bench/aws.py).",
        discussion: """
            Operations, cycled in the order given by --ops: \
            \(Operation.allCases.map(\.rawValue).joined(separator: ", ")).
            The world file is `scripts/standin world`'s output (terraform output -json): the AMI,
            the Auto Scaling groups and the target groups the calls describe.
            If KILN_BENCH_SPAWNED_NS holds CLOCK_MONOTONIC nanoseconds taken by the parent just
            before it started this process, the output also says how long after that the first
            answer came.
            """,
        version: Kiln.version)

    @Option(help: ArgumentHelp("The AWS endpoint for every service (loopback moto).", valueName: "url"))
    var endpoint: String

    @Option(help: "Signing region.")
    var region = "us-east-1"

    @Option(help: ArgumentHelp("How many calls to make (the operations cycle).", valueName: "n"))
    var calls = 200

    @Option(help: ArgumentHelp("Comma-separated operations, in cycle order.", valueName: "list"))
    var ops = Operation.allCases.map(\.rawValue).joined(separator: ",")

    @Option(
        help: ArgumentHelp(
            "`scripts/standin world` output (needed unless only sts.GetCallerIdentity runs).", valueName: "file"))
    var world: String?

    @Option(
        help: ArgumentHelp("Names this run's SSM parameters and tag values apart from other tools'.", valueName: "name")
    )
    var label = "kiln"

    mutating func run() throws {
        let mainStarted = monotonicNanoseconds()
        let sequence = try ops.split(separator: ",").map { name -> Operation in
            guard let op = Operation(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError(
                    "unknown operation '\(name)'; known: \(Operation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return op
        }
        guard !sequence.isEmpty, calls >= 1 else { throw ValidationError("need at least one operation and one call") }
        let needsWorld = sequence.prefix(calls).contains { $0 != .getCallerIdentity }
        let facts = try needsWorld ? World.load(world) : World.empty

        let environment = ProcessInfo.processInfo.environment
        let credentials = AWSCredentials(
            accessKeyID: environment["AWS_ACCESS_KEY_ID"] ?? "testing",
            secretAccessKey: environment["AWS_SECRET_ACCESS_KEY"] ?? "testing")
        // HTTPSettings() leaves every proxy off: the calls go straight to the endpoint.
        let client = AWSClient(
            endpoints: AWSEndpoints(region: region, general: endpoint), credentials: .fixed(credentials),
            http: HTTPClient(settings: HTTPSettings()))

        var timings: [[String: Any]] = []
        timings.reserveCapacity(calls)
        var firstAnswer: UInt64?
        for index in 0..<calls {
            let op = sequence[index % sequence.count]
            let started = monotonicNanoseconds()
            try perform(op, index: index, cycle: index / sequence.count, client: client, world: facts)
            let finished = monotonicNanoseconds()
            if firstAnswer == nil { firstAnswer = finished }
            timings.append(["op": op.rawValue, "ms": Double(finished - started) / 1e6])
        }

        var report: [String: Any] = [
            "tool": "kiln",
            "version": Kiln.version,
            "calls": timings,
            "first_answer_since_main_ms": Double(firstAnswer! - mainStarted) / 1e6,
        ]
        if let spawned = environment["KILN_BENCH_SPAWNED_NS"].flatMap(UInt64.init), spawned <= firstAnswer! {
            report["first_answer_since_spawn_ms"] = Double(firstAnswer! - spawned) / 1e6
        }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    func perform(_ op: Operation, index: Int, cycle: Int, client: AWSClient, world: World) throws {
        switch op {
        case .getCallerIdentity:
            _ = try client.getCallerIdentity()
        case .describeImages:
            var parameters = QueryParameters()
            parameters.addList("ImageId", [world.amiID])
            _ = try client.query(.ec2, "DescribeImages", parameters)
        case .describeInstances:
            _ = try client.query(.ec2, "DescribeInstances")
        case .describeAutoScalingGroups:
            var parameters = QueryParameters()
            parameters.addList("AutoScalingGroupNames.member", world.autoScalingGroups)
            _ = try client.query(.autoscaling, "DescribeAutoScalingGroups", parameters)
        case .describeTargetGroups:
            var parameters = QueryParameters()
            parameters.addList("TargetGroupArns.member", world.targetGroupARNs)
            _ = try client.query(.elasticloadbalancing, "DescribeTargetGroups", parameters)
        case .createTags:
            var parameters = QueryParameters()
            parameters.addList("ResourceId", [world.amiID])
            parameters.addKeyValues("Tag", [(key: "kiln:bench", value: "\(label)-\(index)")])
            _ = try client.query(.ec2, "CreateTags", parameters, mutation: .idempotent)
        case .putParameter:
            _ = try client.json(
                .ssm, target: "AmazonSSM.PutParameter",
                [
                    "Name": Operation.parameterName(label: label, cycle: cycle),
                    "Value": "\(label)-\(index)", "Type": "String", "Overwrite": true,
                ], mutation: .idempotent)
        case .getParameter:
            _ = try client.json(
                .ssm, target: "AmazonSSM.GetParameter",
                [
                    "Name": Operation.parameterName(label: label, cycle: cycle)
                ])
        }
    }
}

/// The calls the benchmark makes; the driver (scripts/bench/aws.py) uses the
/// same names for boto3 and the AWS CLI.
enum Operation: String, CaseIterable {
    case getCallerIdentity = "sts.GetCallerIdentity"
    case describeImages = "ec2.DescribeImages"
    case describeInstances = "ec2.DescribeInstances"
    case describeAutoScalingGroups = "autoscaling.DescribeAutoScalingGroups"
    case describeTargetGroups = "elbv2.DescribeTargetGroups"
    case createTags = "ec2.CreateTags"
    case putParameter = "ssm.PutParameter"
    case getParameter = "ssm.GetParameter"

    /// SSM keeps at most 100 versions of a parameter: a new one every 90 cycles.
    static func parameterName(label: String, cycle: Int) -> String {
        "/kiln/bench/\(label)/p\(cycle / 90)"
    }
}

/// What the calls describe, from `terraform output -json` as `standin world` prints it.
struct World {
    var amiID = ""
    var autoScalingGroups: [String] = []
    var targetGroupARNs: [String] = []

    static let empty = World()

    static func load(_ path: String?) throws -> World {
        guard let path else { throw ValidationError("--world is needed for calls other than sts.GetCallerIdentity") }
        guard let data = FileManager.default.contents(atPath: path),
            let outputs = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw ValidationError("\(path): not a JSON object")
        }
        func value(_ key: String) throws -> Any {
            guard let value = (outputs[key] as? [String: Any])?["value"] else {
                throw ValidationError("\(path): missing output '\(key)'")
            }
            return value
        }
        guard let ami = try value("app_ami_id") as? String,
            let environments = try value("environments") as? [String], !environments.isEmpty
        else {
            throw ValidationError("\(path): app_ami_id or environments is not what standin world writes")
        }
        var world = World(amiID: ami)
        for environment in environments {
            guard let group = try value("\(environment)_asg_name") as? String,
                let targetGroup = try value("\(environment)_target_group_arn") as? String
            else {
                throw ValidationError("\(path): outputs for environment '\(environment)' are not strings")
            }
            world.autoScalingGroups.append(group)
            world.targetGroupARNs.append(targetGroup)
        }
        return world
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock Python's time.monotonic_ns() reads,
/// so the driver's spawn time and this process's times compare.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
