import Foundation
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

@testable import KilnAWS

// CloudWatch's DescribeAlarms against the moto stand-in (moto implements
// PutMetricAlarm, SetAlarmState and DescribeAlarms over the Query protocol).

private func cloudWatchClient(_ url: String) -> AWSClient {
    AWSClient(
        endpoints: AWSEndpoints(region: "us-east-1", general: url),
        credentials: .fixed(AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")),
        http: HTTPClient(settings: HTTPSettings()), retry: RetryPolicy(baseDelay: 0.01, maxDelay: 0.1))
}

extension AWSClient {
    /// PutMetricAlarm (CloudWatch API Reference): the least a metric alarm needs.
    func putTestAlarm(_ name: String) throws {
        var parameters = QueryParameters()
        parameters.add("AlarmName", name)
        parameters.add("Namespace", "AWS/ApplicationELB")
        parameters.add("MetricName", "HTTPCode_Target_5XX_Count")
        parameters.add("Statistic", "Sum")
        parameters.add("Period", 60)
        parameters.add("EvaluationPeriods", 1)
        parameters.add("Threshold", "10")
        parameters.add("ComparisonOperator", "GreaterThanThreshold")
        _ = try query(.cloudwatch, "PutMetricAlarm", parameters, mutation: .idempotent)
    }

    /// SetAlarmState (CloudWatch API Reference): what a test does in place of a metric.
    func setTestAlarmState(_ name: String, _ state: AlarmState, reason: String) throws {
        var parameters = QueryParameters()
        parameters.add("AlarmName", name)
        parameters.add("StateValue", state.rawValue)
        parameters.add("StateReason", reason)
        _ = try query(.cloudwatch, "SetAlarmState", parameters, mutation: .idempotent)
    }
}

@Suite struct CloudWatchTests {
    @Test func describeAlarmsReadsEachStateAndLeavesOutNamesItDoesNotKnow() throws {
        try withStandIn("moto") { moto in
            let client = cloudWatchClient(moto.url)
            try client.putTestAlarm("web-5xx")
            try client.putTestAlarm("web-latency")
            try client.setTestAlarmState("web-5xx", .alarm, reason: "Threshold Crossed: 12 > 10")
            try client.setTestAlarmState("web-latency", .ok, reason: "fine")
            let alarms = try client.describeAlarms(names: ["web-5xx", "web-latency", "no-such-alarm"])
            let byName = Dictionary(uniqueKeysWithValues: alarms.map { ($0.name, $0) })
            #expect(Set(byName.keys) == ["web-5xx", "web-latency"])
            #expect(byName["web-5xx"]?.state == .alarm)
            #expect(byName["web-5xx"]?.reason == "Threshold Crossed: 12 > 10")
            #expect(byName["web-5xx"]?.kind == .metric)
            #expect(byName["web-latency"]?.state == .ok)
            #expect(client.calls.snapshot["cloudwatch:DescribeAlarms"] == 1)
        }
    }

    @Test func moreThanAHundredNamesAreAskedForInRequestsOfAHundred() throws {
        try withStandIn("moto") { moto in
            let client = cloudWatchClient(moto.url)
            let names = (1...101).map { "alarm-\($0)" }
            try client.putTestAlarm("alarm-101")
            // AWS starts an alarm in INSUFFICIENT_DATA; moto starts it in OK, so set it.
            try client.setTestAlarmState("alarm-101", .insufficientData, reason: "no data")
            let alarms = try client.describeAlarms(names: names)
            #expect(alarms.map(\.name) == ["alarm-101"])
            #expect(alarms.first?.state == .insufficientData)
            #expect(client.calls.snapshot["cloudwatch:DescribeAlarms"] == 2)
        }
    }

    @Test func theEndpointVariableIsAWSsServiceSpecificOne() {
        // "Service-specific endpoints" (AWS SDKs and Tools reference): the
        // service id "CloudWatch", upper case: AWS_ENDPOINT_URL_CLOUDWATCH.
        let endpoints = AWSEndpoints(
            region: "eu-west-1", job: JobContext(environment: ["AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:7001"]))
        #expect(endpoints.url(for: .cloudwatch) == "http://127.0.0.1:7001")
        #expect(endpoints.url(for: .ec2) == "https://ec2.eu-west-1.amazonaws.com")
        #expect(AWSEndpoints(region: "eu-west-1").url(for: .cloudwatch) == "https://monitoring.eu-west-1.amazonaws.com")
        #expect(AWSService.cloudwatch.signingName == "monitoring")
    }
}
