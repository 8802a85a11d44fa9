import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnHTTP

/// One instance as a poll sees it.
public struct ObservedInstance: Sendable, Equatable {
    public let id: String
    public let lifecycleState: LifecycleState
    public let healthStatus: HealthStatus
    /// The release it runs: its `kiln:release` tag, else `image:<AMI>`.
    public let release: String
    public let imageID: String
    public let privateIP: String?
    public let publicIP: String?
    public let privateDNS: String?
    /// Target group ARN → its state there.
    public let targetHealth: [String: TargetHealthState]
    /// Scale-in protected: removed before Kiln retires it (`Rotation.terminate`).
    public var protectedFromScaleIn = false

    public var inService: Bool { lifecycleState == .inService }
}

/// A poll of the group: one DescribeAutoScalingGroups, one DescribeInstances
/// for instances not seen before (their release and addresses never change),
/// one DescribeTargetHealth per target group. Used by the one thread that
/// runs the rotation (so not Sendable: `known` is its own memory).
final class GroupObserver {
    let client: AWSClient
    let group: String
    private var known: [String: EC2Instance] = [:]

    init(client: AWSClient, group: String) {
        self.client = client
        self.group = group
    }

    func poll() throws -> (group: AutoScalingGroup, instances: [ObservedInstance]) {
        guard let group = try client.describeAutoScalingGroups(names: [group]).first else {
            throw KilnError.badConfiguration("Auto Scaling group \(self.group) does not exist")
        }
        let unknown = group.instances.map(\.id).filter { known[$0] == nil }
        if !unknown.isEmpty {
            for instance in try client.describeInstances(instanceIDs: unknown) { known[instance.id] = instance }
        }
        var health: [String: [String: TargetHealthState]] = [:]
        for arn in group.targetGroupARNs {
            for target in try client.describeTargetHealth(targetGroupARN: arn) {
                health[target.targetID, default: [:]][arn] = target.state
            }
        }
        let instances = group.instances.sorted { $0.id < $1.id }.map { member -> ObservedInstance in
            let details = known[member.id]
            let imageID = details?.imageID ?? "unknown"
            return ObservedInstance(
                id: member.id, lifecycleState: member.lifecycleState, healthStatus: member.healthStatus,
                release: details?.tags[KilnTag.release] ?? "image:\(imageID)", imageID: imageID,
                privateIP: details?.privateIPAddress, publicIP: details?.publicIPAddress,
                privateDNS: details?.privateDNSName,
                targetHealth: health[member.id] ?? [:], protectedFromScaleIn: member.protectedFromScaleIn)
        }
        return (group, instances)
    }
}

/// The health gate for new instances: Auto Scaling `InService` and
/// `Healthy`, `healthy` in every target group of the group (not `initial`,
/// not `draining`), and the HTTP probe when one is set, each for K polls in
/// a row after the grace period. A new instance that passed fails after
/// `unhealthy_threshold` failed checks in a row (as a target group's
/// UnhealthyThresholdCount counts them); one the group takes out of service
/// fails at once. Used by the rotation's one thread, like `GroupObserver`.
final class HealthGate {
    struct Record {
        var firstSeen: Date
        var passesInARow = 0
        /// Failed checks in a row since it passed.
        var failuresInARow = 0
        var passed = false
        var lastProblem: String?
    }

    let settings: HealthSettings
    var targetGroups: [String]
    let http: HTTPClient
    private(set) var records: [String: Record] = [:]

    init(settings: HealthSettings, targetGroups: [String], http: HTTPClient) {
        self.settings = settings
        self.targetGroups = targetGroups
        self.http = http
    }

    func passed(_ id: String) -> Bool { records[id]?.passed ?? false }

    /// Whether the instance serves by its last check: passed, or its last
    /// check passed (what the healthy count reports; the gate wants `consecutive`).
    func serving(_ id: String) -> Bool { records[id].map { $0.passed || $0.passesInARow > 0 } ?? false }

    /// Judges the instances once; returns the first fail-fast failure.
    func judge(_ instances: [ObservedInstance], now: Date) -> RotationFailure? {
        for instance in instances {
            var record = records[instance.id] ?? Record(firstSeen: now)
            defer { records[instance.id] = record }
            // No threshold here: the group itself has judged the instance
            // (Unhealthy) or is taking it away (Terminating*), and replaces it
            // whatever a later check would say.
            if instance.lifecycleState.isTerminating || instance.healthStatus == .unhealthy {
                return RotationFailure(
                    instance: instance.id, check: "auto scaling",
                    answer: "\(instance.lifecycleState), \(instance.healthStatus): the group is replacing it")
            }
            if now.timeIntervalSince(record.firstSeen) < settings.grace { continue }
            if let problem = problem(instance) {
                record.passesInARow = 0
                record.lastProblem = "\(problem.check): \(problem.answer)"
                if record.passed {
                    // A passed instance stays passed (and serving) until as
                    // many checks in a row fail as the threshold says.
                    record.failuresInARow += 1
                    if record.failuresInARow >= settings.unhealthyThreshold {
                        let count = settings.unhealthyThreshold
                        let inARow = count > 1 ? " (\(count) failed checks in a row)" : ""
                        return RotationFailure(
                            instance: instance.id, check: problem.check,
                            answer: "turned unhealthy after passing\(inARow): \(problem.answer)")
                    }
                }
            } else {
                record.passesInARow += 1
                record.failuresInARow = 0
                record.lastProblem = nil
                if record.passesInARow >= settings.consecutive { record.passed = true }
            }
        }
        return nil
    }

    /// The last reason an instance was not healthy, for the timeout message.
    func lastProblem(_ id: String) -> String? { records[id]?.lastProblem }

    private func problem(_ instance: ObservedInstance) -> (check: String, answer: String)? {
        guard instance.inService, instance.healthStatus == .healthy else {
            return ("auto scaling", "\(instance.lifecycleState), \(instance.healthStatus)")
        }
        for arn in targetGroups {
            let state = instance.targetHealth[arn]
            if state != .healthy {
                return (
                    "target group \(arn.split(separator: "/").dropLast().last ?? Substring(arn))",
                    state?.rawValue ?? "not registered"
                )
            }
        }
        guard let template = settings.url else { return nil }
        guard let ip = instance.privateIP else { return ("http", "no private address yet") }
        if template.contains("{public_ip}") && instance.publicIP == nil { return ("http", "no public address") }
        if template.contains("{private_dns}") && instance.privateDNS == nil { return ("http", "no private DNS name") }
        let url =
            template
            .replacingOccurrences(of: "{private_ip}", with: ip)
            .replacingOccurrences(of: "{public_ip}", with: instance.publicIP ?? "")
            .replacingOccurrences(of: "{private_dns}", with: instance.privateDNS ?? "")
            .replacingOccurrences(of: "{instance_id}", with: instance.id)
        do {
            let response = try http.send(
                HTTPRequest(url: url, connectTimeout: settings.probeTimeout, timeout: settings.probeTimeout))
            guard (200..<300).contains(response.status) else { return ("http \(url)", "HTTP \(response.status)") }
            if let expected = settings.expectBody, !response.text.contains(expected) {
                return ("http \(url)", "body lacks '\(expected)'")
            }
            return nil
        } catch let error as HTTPError {
            return ("http \(url)", error.detail)
        } catch {
            return ("http \(url)", "\(error)")
        }
    }
}

/// Why a rotation stopped: which instance, which check, what it answered.
public struct RotationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let instance: String?
    public let check: String
    public let answer: String
    public var description: String {
        "\(instance.map { "instance \($0): " } ?? "")\(check): \(answer)"
    }
}
