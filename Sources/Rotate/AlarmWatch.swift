import Foundation
import KilnAWS
import KilnCore

/// The CloudWatch alarms the health gate watches (`health.alarms`): any of
/// them in ALARM fails the batch, as an alarm does an EC2 Auto Scaling
/// instance refresh with `AlarmSpecification` ("Auto Scaling instance
/// refresh: ... if any of the alarms go into the ALARM state, the instance
/// refresh fails", EC2 Auto Scaling user guide, "Add CloudWatch alarms to an
/// instance refresh"). OK and INSUFFICIENT_DATA pass: an alarm with too
/// little data has not seen a problem. One DescribeAlarms a poll, whatever
/// the number of instances.
struct AlarmWatch {
    let names: [String]
    let client: AWSClient
    /// Where the names came from, for the message naming a missing one.
    static let keyPath = "health.alarms"

    /// `health.alarms`: a list of alarm names (or one name), each 1 to 255
    /// characters ("AlarmName ... Length Constraints: Minimum length of 1.
    /// Maximum length of 255", CloudWatch API Reference, PutMetricAlarm),
    /// none given twice.
    static func names(_ node: ConfigNode, _ keyPath: String, file: ConfigFile) throws -> [String] {
        var names: [String] = []
        for (index, item) in file.listOrOne(node, keyPath).enumerated() {
            let name = try file.scalar(item, "\(keyPath)[\(index)]")
            guard (1...255).contains(name.count) else {
                throw file.fail(item, "\(keyPath)[\(index)]", "an alarm name has 1 to 255 characters")
            }
            guard !names.contains(name) else {
                throw file.fail(item, "\(keyPath)[\(index)]", "\(Untrusted.quoted(name)) is named twice")
            }
            names.append(name)
        }
        return names
    }

    /// Names CloudWatch does not know: DescribeAlarms leaves them out of its answer.
    static func missing(_ names: [String], among alarms: [CloudWatchAlarm]) -> [String] {
        let known = Set(alarms.map(\.name))
        return names.filter { !known.contains($0) }
    }

    /// The first watched alarm in ALARM (in the order kiln.yml names them),
    /// or one that has gone (deleted during the rotation: the gate can no
    /// longer vouch for the release), as the failure that rolls back.
    static func failure(_ names: [String], among alarms: [CloudWatchAlarm]) -> RotationFailure? {
        let byName = Dictionary(alarms.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in names {
            guard let alarm = byName[name] else {
                return RotationFailure(
                    instance: nil, check: "CloudWatch alarm \(name)", answer: "no longer exists (deleted?)")
            }
            if alarm.state == .alarm {
                return RotationFailure(
                    instance: nil, check: "CloudWatch alarm \(name)",
                    answer: "ALARM\(alarm.reason.map { ": \(Untrusted.quoted($0))" } ?? "")")
            }
        }
        return nil
    }

    /// Before anything changes: every named alarm exists, else exit 78
    /// naming them (a typo must not make the gate watch nothing).
    func checkExist(environment: String) throws {
        guard !names.isEmpty else { return }
        let missing = Self.missing(names, among: try client.describeAlarms(names: names))
        guard missing.isEmpty else {
            throw KilnError.badConfiguration(
                """
                environments.\(environment).rotate.\(Self.keyPath): no CloudWatch alarm named \
                \(missing.map { Untrusted.quoted($0) }.joined(separator: ", ")) in \(client.region)
                """
            )
        }
    }

    /// Once a poll: the failure an alarm makes, if any.
    func check() throws -> RotationFailure? {
        guard !names.isEmpty else { return nil }
        return Self.failure(names, among: try client.describeAlarms(names: names))
    }
}
