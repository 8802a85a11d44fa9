import Foundation
import KilnCore

// Elastic Load Balancing v2 (API 2015-12-01): target groups and their
// targets' health. Lists are `<member>`; DescribeTargetGroups pages with
// `Marker` in requests and `NextMarker` in answers, not `NextToken`.

/// A target group.
public struct TargetGroup: Sendable, Equatable {
    public let arn: String
    public let name: String
    public let port: Int?
    public let `protocol`: String?
    public let vpcID: String?
    /// `instance`, `ip`, `lambda` or `alb`.
    public let targetType: String?
    public let healthCheckPath: String?
    public let healthCheckPort: String?
    public let loadBalancerARNs: [String]
}

/// One target's health in a target group.
public struct TargetHealth: Sendable, Equatable {
    /// The instance id (or IP address) of the target.
    public let targetID: String
    public let port: Int?
    public let state: TargetHealthState
    public let reason: String?
    public let description: String?
}

extension AWSClient {
    /// DescribeTargetGroups by ARNs, or names, or a load balancer's ARN
    /// (none: all), every page. `pageSize` is PageSize (1...400).
    public func describeTargetGroups(
        arns: [String] = [], names: [String] = [], loadBalancerARN: String? = nil, pageSize: Int? = nil
    ) throws -> [TargetGroup] {
        var parameters = QueryParameters()
        parameters.addList("TargetGroupArns.member", arns)
        parameters.addList("Names.member", names)
        parameters.add("LoadBalancerArn", loadBalancerARN)
        parameters.add("PageSize", pageSize)
        let action = "DescribeTargetGroups"
        let answer = AnswerDecoder(.elasticloadbalancing, action)
        return try queryPages(
            .elasticloadbalancing, action, parameters, requestToken: "Marker", answerTokens: ["NextMarker"]
        ) { page in
            try answer.items(page, "TargetGroups", member: "member").map { group in
                TargetGroup(
                    arn: try answer.required(group, "TargetGroupArn"),
                    name: try answer.required(group, "TargetGroupName"),
                    port: answer.optionalInt(group, "Port"), protocol: group.string("Protocol"),
                    vpcID: group.string("VpcId"), targetType: group.string("TargetType"),
                    healthCheckPath: group.string("HealthCheckPath"), healthCheckPort: group.string("HealthCheckPort"),
                    loadBalancerARNs: answer.children(group, "LoadBalancerArns", member: "member").map(\.text))
            }
        }
    }

    /// DescribeTargetHealth of a group's targets (empty: every registered target).
    public func describeTargetHealth(targetGroupARN: String, targetIDs: [String] = []) throws -> [TargetHealth] {
        var parameters = QueryParameters()
        parameters.add("TargetGroupArn", targetGroupARN)
        for (index, id) in targetIDs.enumerated() { parameters.add("Targets.member.\(index + 1).Id", id) }
        let root = try query(.elasticloadbalancing, "DescribeTargetHealth", parameters)
        let answer = AnswerDecoder(.elasticloadbalancing, "DescribeTargetHealth")
        return try answer.items(root, "TargetHealthDescriptions", member: "member").map { description in
            guard let target = description["Target"] else { throw answer.missing("Target") }
            guard let health = description["TargetHealth"] else { throw answer.missing("TargetHealth") }
            return TargetHealth(
                targetID: try answer.required(target, "Id"), port: answer.optionalInt(target, "Port"),
                state: TargetHealthState(rawValue: try answer.required(health, "State")),
                reason: health.string("Reason"),
                description: health.string("Description"))
        }
    }
}
