import Foundation
import KilnCore

// CloudWatch (API 2010-08-01, Query protocol): the alarms a rollout's gate
// watches. Request lists are `Name.member.N`; answers wrap lists in
// `<member>` and page with `NextToken` (DescribeAlarms in the CloudWatch API
// Reference).

/// One alarm as DescribeAlarms reports it (a metric or a composite alarm).
public struct CloudWatchAlarm: Sendable, Equatable {
    public let name: String
    public let state: AlarmState
    /// Why it is in its state, in CloudWatch's words (`StateReason`).
    public let reason: String?
    /// `MetricAlarm` or `CompositeAlarm`.
    public let kind: Kind

    public enum Kind: String, Sendable {
        case metric = "MetricAlarm"
        case composite = "CompositeAlarm"
    }

    public init(name: String, state: AlarmState, reason: String?, kind: Kind) {
        self.name = name
        self.state = state
        self.reason = reason
        self.kind = kind
    }
}

extension AWSClient {
    /// DescribeAlarms takes at most 100 `AlarmNames` a request (API Reference).
    public static let alarmNamesPerRequest = 100

    /// DescribeAlarms of the named alarms, metric and composite, every page
    /// of every request of at most 100 names. A name CloudWatch does not
    /// know is simply absent from the answer (it is not an error there).
    public func describeAlarms(names: [String]) throws -> [CloudWatchAlarm] {
        var alarms: [CloudWatchAlarm] = []
        var start = 0
        while start < names.count {
            let chunk = Array(names[start..<min(start + Self.alarmNamesPerRequest, names.count)])
            start += chunk.count
            var parameters = QueryParameters()
            parameters.addList("AlarmNames.member", chunk)
            // Without AlarmTypes, DescribeAlarms returns metric alarms only,
            // "even if composite alarms exist" (API Reference, AlarmTypes).
            parameters.addList(
                "AlarmTypes.member", [CloudWatchAlarm.Kind.composite.rawValue, CloudWatchAlarm.Kind.metric.rawValue])
            let answer = AnswerDecoder(.cloudwatch, "DescribeAlarms")
            alarms += try queryPages(.cloudwatch, "DescribeAlarms", parameters) { page in
                let result = page["DescribeAlarmsResult"] ?? page
                return try [CloudWatchAlarm.Kind.metric, .composite].flatMap { kind in
                    try answer.children(result, "\(kind.rawValue)s", member: "member").map { alarm in
                        CloudWatchAlarm(
                            name: try answer.required(alarm, "AlarmName"),
                            state: AlarmState(rawValue: try answer.required(alarm, "StateValue")),
                            reason: alarm.string("StateReason"), kind: kind)
                    }
                }
            }
        }
        return alarms
    }
}
