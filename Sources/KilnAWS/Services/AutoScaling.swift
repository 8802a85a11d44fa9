import Foundation
import KilnCore

// Auto Scaling (API 2011-01-01): the groups Kiln rolls releases onto. Its
// Query answers wrap lists in `<member>`; request lists are
// `Name.member.N`; answers page with `NextToken`.

/// A launch template as a group (or one of its instances) names it.
public struct LaunchTemplateSpecification: Sendable, Equatable {
    public let id: String?
    public let name: String?
    /// A number, `$Latest` or `$Default`.
    public let version: String?

    public init(id: String? = nil, name: String? = nil, version: String? = nil) {
        self.id = id
        self.name = name
        self.version = version
    }
}

/// An Auto Scaling group, with what a rollout needs to know of it.
public struct AutoScalingGroup: Sendable, Equatable {
    public let name: String
    public let arn: String?
    public let minSize: Int
    public let maxSize: Int
    public let desiredCapacity: Int
    /// The group's launch template (from `LaunchTemplate`, or from a mixed
    /// instances policy's `LaunchTemplateSpecification`).
    public let launchTemplate: LaunchTemplateSpecification?
    /// The launch template is the one inside a `MixedInstancesPolicy`
    /// (`MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification`),
    /// which is where a new version must go (`updateAutoScalingGroup`).
    public let usesMixedInstancesPolicy: Bool
    public let instances: [AutoScalingInstance]
    public let targetGroupARNs: [String]
    /// Names of the suspended processes (`Launch`, `Terminate`, `ReplaceUnhealthy`, ...).
    public let suspendedProcesses: [String]
    public let tags: [String: String]
    public let healthCheckType: String?
    public let healthCheckGracePeriod: Int?
    /// Set while the group is being deleted.
    public let status: String?
    /// `NewInstancesProtectedFromScaleIn`: the group launches every instance
    /// scale-in protected (the user's choice, which a rotation keeps).
    public var newInstancesProtectedFromScaleIn = false
    /// The mixed instances policy's `LaunchTemplate.Overrides`, in order
    /// (empty without a policy).
    public var launchTemplateOverrides: [LaunchTemplateOverride] = []
    /// The group's warm pool, from the answer's own `WarmPoolConfiguration`
    /// (the AutoScalingGroup data type carries it, API Reference: "The warm
    /// pool for the group"): nil when the group has none, so no
    /// DescribeWarmPool is needed to know.
    public var warmPool: WarmPool?
}

/// One of a mixed instances policy's `Overrides` (API Reference,
/// LaunchTemplateOverrides): an instance type (or instance requirements)
/// the group may launch, optionally from a launch template of its own.
public struct LaunchTemplateOverride: Sendable, Equatable {
    public let instanceType: String?
    /// The override gives `InstanceRequirements` instead of an instance type.
    public let hasInstanceRequirements: Bool
    /// "Provides a launch template for the specified instance type or
    /// instance requirements ... overrides the launch template that is
    /// defined for the mixed instances policy" (LaunchTemplateOverrides):
    /// instances of this type launch from it, not from the policy's template.
    public let launchTemplate: LaunchTemplateSpecification?

    public init(
        instanceType: String? = nil, hasInstanceRequirements: Bool = false,
        launchTemplate: LaunchTemplateSpecification? = nil
    ) {
        self.instanceType = instanceType
        self.hasInstanceRequirements = hasInstanceRequirements
        self.launchTemplate = launchTemplate
    }
}

/// An instance as its group sees it.
public struct AutoScalingInstance: Sendable, Equatable {
    public let id: String
    public let lifecycleState: LifecycleState
    public let healthStatus: HealthStatus
    public let availabilityZone: String?
    public let instanceType: String?
    public let launchTemplate: LaunchTemplateSpecification?
    public let protectedFromScaleIn: Bool
}

/// A group's warm pool (DescribeWarmPool's `WarmPoolConfiguration`).
public struct WarmPool: Sendable, Equatable {
    public let minSize: Int?
    public let maxGroupPreparedCapacity: Int?
    /// `Stopped`, `Running` or `Hibernated`.
    public let poolState: String?
    public let status: String?
}

/// A scaling activity a call started.
public struct ScalingActivity: Sendable, Equatable {
    public let id: String
    public let description: String?
    public let statusCode: String?
}

/// A lifecycle hook of a group.
public struct LifecycleHook: Sendable, Equatable {
    public let name: String
    public let autoScalingGroupName: String
    /// `autoscaling:EC2_INSTANCE_LAUNCHING` or `autoscaling:EC2_INSTANCE_TERMINATING`.
    public let transition: String
    public let heartbeatTimeout: Int?
    public let globalTimeout: Int?
    public let defaultResult: String?

    /// The transition of a hook that holds terminating instances.
    public static let terminating = "autoscaling:EC2_INSTANCE_TERMINATING"
    /// Holds instances the group terminates (scale-in, TerminateInstanceInAutoScalingGroup).
    public var holdsTerminations: Bool { transition == Self.terminating }
}

/// The health Kiln reports for an instance with SetInstanceHealth.
public enum AutoScalingHealthStatus: String, Sendable {
    case healthy = "Healthy"
    case unhealthy = "Unhealthy"
}

/// How a lifecycle action ends.
public enum LifecycleActionResult: String, Sendable {
    case proceed = "CONTINUE"
    case abandon = "ABANDON"
}

extension AWSClient {
    /// DescribeAutoScalingGroups by name (empty: all), every page.
    /// `pageSize` is MaxRecords (1...100).
    public func describeAutoScalingGroups(names: [String] = [], pageSize: Int? = nil) throws -> [AutoScalingGroup] {
        var parameters = QueryParameters()
        parameters.addList("AutoScalingGroupNames.member", names)
        parameters.add("MaxRecords", pageSize)
        let answer = AnswerDecoder(.autoscaling, "DescribeAutoScalingGroups")
        return try queryPages(.autoscaling, "DescribeAutoScalingGroups", parameters) { page in
            try answer.items(page, "AutoScalingGroups", member: "member").map { try answer.autoScalingGroup($0) }
        }
    }

    /// UpdateAutoScalingGroup: sizes and/or the launch template (by id, at
    /// an exact version so a rollout knows what new instances get).
    /// `inMixedInstancesPolicy` sends the template as the mixed instances
    /// policy's `LaunchTemplate.LaunchTemplateSpecification` and nothing else
    /// of the policy: "Any properties that you don't specify are not changed
    /// by this update request" (API Reference, UpdateAutoScalingGroup), so
    /// the overrides and the On-Demand/Spot distribution stay. Sent as a
    /// plain `LaunchTemplate` instead, it would replace the policy.
    public func updateAutoScalingGroup(
        _ name: String, minSize: Int? = nil, maxSize: Int? = nil, desiredCapacity: Int? = nil,
        launchTemplate: LaunchTemplateSpecification? = nil, inMixedInstancesPolicy: Bool = false
    ) throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", name)
        parameters.add("MinSize", minSize)
        parameters.add("MaxSize", maxSize)
        parameters.add("DesiredCapacity", desiredCapacity)
        if let launchTemplate {
            let prefix =
                inMixedInstancesPolicy
                ? "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification" : "LaunchTemplate"
            parameters.add("\(prefix).LaunchTemplateId", launchTemplate.id)
            parameters.add("\(prefix).LaunchTemplateName", launchTemplate.id == nil ? launchTemplate.name : nil)
            parameters.add("\(prefix).Version", launchTemplate.version)
        }
        _ = try query(.autoscaling, "UpdateAutoScalingGroup", parameters, mutation: .idempotent)
    }

    /// SetDesiredCapacity, not waiting for a cooldown (`HonorCooldown=false`).
    public func setDesiredCapacity(_ name: String, _ desiredCapacity: Int) throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", name)
        parameters.add("DesiredCapacity", desiredCapacity)
        parameters.add("HonorCooldown", false)
        _ = try query(.autoscaling, "SetDesiredCapacity", parameters, mutation: .idempotent)
    }

    /// TerminateInstanceInAutoScalingGroup. Sent once: a second send could
    /// terminate (and, decrementing, shrink the group) twice over.
    public func terminateInstanceInAutoScalingGroup(
        _ instanceID: String, shouldDecrementDesiredCapacity: Bool
    ) throws -> ScalingActivity? {
        var parameters = QueryParameters()
        parameters.add("InstanceId", instanceID)
        parameters.add("ShouldDecrementDesiredCapacity", shouldDecrementDesiredCapacity)
        let root = try query(.autoscaling, "TerminateInstanceInAutoScalingGroup", parameters, mutation: .once)
        guard let activity = root.first(named: "Activity") else { return nil }
        let answer = AnswerDecoder(.autoscaling, "TerminateInstanceInAutoScalingGroup")
        return ScalingActivity(
            id: try answer.required(activity, "ActivityId"), description: activity.string("Description"),
            statusCode: activity.string("StatusCode"))
    }

    /// DetachInstances, at most 20 instances a call (API Reference,
    /// DetachInstances: "You can specify up to 20 instances"). Sent once: the
    /// effect of a call whose answer was lost is read back from the group
    /// by the caller, never guessed (a detached instance is no longer a
    /// member, and a second send naming it is refused). The instances are
    /// deregistered from the group's target groups; without the decrement
    /// the group launches replacements.
    public func detachInstances(
        _ groupName: String, _ instanceIDs: [String], shouldDecrementDesiredCapacity: Bool
    ) throws -> [ScalingActivity] {
        var activities: [ScalingActivity] = []
        var start = 0
        let answer = AnswerDecoder(.autoscaling, "DetachInstances")
        while start < instanceIDs.count {
            let chunk = Array(instanceIDs[start..<min(start + 20, instanceIDs.count)])
            start += chunk.count
            var parameters = QueryParameters()
            parameters.add("AutoScalingGroupName", groupName)
            parameters.addList("InstanceIds.member", chunk)
            parameters.add("ShouldDecrementDesiredCapacity", shouldDecrementDesiredCapacity)
            let root = try query(.autoscaling, "DetachInstances", parameters, mutation: .once)
            activities += try answer.items(root, "Activities", member: "member").map { activity in
                ScalingActivity(
                    id: try answer.required(activity, "ActivityId"), description: activity.string("Description"),
                    statusCode: activity.string("StatusCode"))
            }
        }
        return activities
    }

    /// SetInstanceProtection: scale-in protection on or off for instances
    /// of one group, at most 50 a call (API Reference, `InstanceIds`).
    public func setInstanceProtection(_ groupName: String, _ instanceIDs: [String], protected: Bool) throws {
        var start = 0
        while start < instanceIDs.count {
            let chunk = Array(instanceIDs[start..<min(start + 50, instanceIDs.count)])
            start += chunk.count
            var parameters = QueryParameters()
            parameters.add("AutoScalingGroupName", groupName)
            parameters.addList("InstanceIds.member", chunk)
            parameters.add("ProtectedFromScaleIn", protected)
            _ = try query(.autoscaling, "SetInstanceProtection", parameters, mutation: .idempotent)
        }
    }

    /// DescribeWarmPool of one group: its configuration, or nil when it has none.
    public func describeWarmPool(_ groupName: String) throws -> WarmPool? {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", groupName)
        let root = try query(.autoscaling, "DescribeWarmPool", parameters)
        return AnswerDecoder(.autoscaling, "DescribeWarmPool").warmPool(root.first(named: "WarmPoolConfiguration"))
    }

    public func setInstanceHealth(
        _ instanceID: String, _ health: AutoScalingHealthStatus, shouldRespectGracePeriod: Bool? = nil
    ) throws {
        var parameters = QueryParameters()
        parameters.add("InstanceId", instanceID)
        parameters.add("HealthStatus", health.rawValue)
        parameters.add("ShouldRespectGracePeriod", shouldRespectGracePeriod)
        _ = try query(.autoscaling, "SetInstanceHealth", parameters, mutation: .idempotent)
    }

    /// SuspendProcesses; no names suspends them all.
    public func suspendProcesses(_ groupName: String, _ processes: [String] = []) throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", groupName)
        parameters.addList("ScalingProcesses.member", processes)
        _ = try query(.autoscaling, "SuspendProcesses", parameters, mutation: .idempotent)
    }

    /// ResumeProcesses; no names resumes them all.
    public func resumeProcesses(_ groupName: String, _ processes: [String] = []) throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", groupName)
        parameters.addList("ScalingProcesses.member", processes)
        _ = try query(.autoscaling, "ResumeProcesses", parameters, mutation: .idempotent)
    }

    /// CreateOrUpdateTags on one group.
    public func createOrUpdateTags(
        autoScalingGroup groupName: String, tags: [String: String], propagateAtLaunch: Bool
    ) throws {
        var parameters = QueryParameters()
        for (index, tag) in tags.sorted(by: { $0.key < $1.key }).enumerated() {
            let prefix = "Tags.member.\(index + 1)"
            parameters.add("\(prefix).ResourceId", groupName)
            parameters.add("\(prefix).ResourceType", "auto-scaling-group")
            parameters.add("\(prefix).Key", tag.key)
            parameters.add("\(prefix).Value", tag.value)
            parameters.add("\(prefix).PropagateAtLaunch", propagateAtLaunch)
        }
        _ = try query(.autoscaling, "CreateOrUpdateTags", parameters, mutation: .idempotent)
    }

    /// DeleteTags (Auto Scaling) on one group, by key.
    public func deleteTags(autoScalingGroup groupName: String, keys: [String]) throws {
        var parameters = QueryParameters()
        for (index, key) in keys.enumerated() {
            let prefix = "Tags.member.\(index + 1)"
            parameters.add("\(prefix).ResourceId", groupName)
            parameters.add("\(prefix).ResourceType", "auto-scaling-group")
            parameters.add("\(prefix).Key", key)
        }
        _ = try query(.autoscaling, "DeleteTags", parameters, mutation: .idempotent)
    }

    /// DescribeLifecycleHooks of one group (names empty: all of them).
    public func describeLifecycleHooks(_ groupName: String, names: [String] = []) throws -> [LifecycleHook] {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", groupName)
        parameters.addList("LifecycleHookNames.member", names)
        let root = try query(.autoscaling, "DescribeLifecycleHooks", parameters)
        let answer = AnswerDecoder(.autoscaling, "DescribeLifecycleHooks")
        return try answer.items(root, "LifecycleHooks", member: "member").map { hook in
            LifecycleHook(
                name: try answer.required(hook, "LifecycleHookName"),
                autoScalingGroupName: try answer.required(hook, "AutoScalingGroupName"),
                transition: try answer.required(hook, "LifecycleTransition"),
                heartbeatTimeout: answer.optionalInt(hook, "HeartbeatTimeout"),
                globalTimeout: answer.optionalInt(hook, "GlobalTimeout"),
                defaultResult: hook.string("DefaultResult"))
        }
    }

    /// CompleteLifecycleAction for an instance (or the action's token).
    public func completeLifecycleAction(
        _ groupName: String, hookName: String, instanceID: String? = nil, actionToken: String? = nil,
        result: LifecycleActionResult
    ) throws {
        var parameters = QueryParameters()
        parameters.add("AutoScalingGroupName", groupName)
        parameters.add("LifecycleHookName", hookName)
        parameters.add("InstanceId", instanceID)
        parameters.add("LifecycleActionToken", actionToken)
        parameters.add("LifecycleActionResult", result.rawValue)
        _ = try query(.autoscaling, "CompleteLifecycleAction", parameters, mutation: .idempotent)
    }
}

extension AnswerDecoder {
    /// A launch template specification element (`LaunchTemplateId`, `LaunchTemplateName`, `Version`).
    func launchTemplateSpecification(_ element: XMLElement?) -> LaunchTemplateSpecification? {
        guard let element, element.string("LaunchTemplateId") != nil || element.string("LaunchTemplateName") != nil
        else {
            return nil
        }
        return LaunchTemplateSpecification(
            id: element.string("LaunchTemplateId"), name: element.string("LaunchTemplateName"),
            version: element.string("Version"))
    }

    /// A `WarmPoolConfiguration` (DescribeWarmPool's, or the group's own in DescribeAutoScalingGroups).
    func warmPool(_ configuration: XMLElement?) -> WarmPool? {
        guard let configuration, !configuration.children.isEmpty else { return nil }
        return WarmPool(
            minSize: optionalInt(configuration, "MinSize"),
            maxGroupPreparedCapacity: optionalInt(configuration, "MaxGroupPreparedCapacity"),
            poolState: configuration.string("PoolState"), status: configuration.string("Status"))
    }

    func autoScalingGroup(_ group: XMLElement) throws -> AutoScalingGroup {
        var tags: [String: String] = [:]
        for tag in children(group, "Tags", member: "member") {
            if let key = tag.string("Key") { tags[key] = tag.string("Value") ?? "" }
        }
        let plainTemplate = launchTemplateSpecification(group["LaunchTemplate"])
        let mixedTemplate = launchTemplateSpecification(
            group.path("MixedInstancesPolicy", "LaunchTemplate", "LaunchTemplateSpecification"))
        return AutoScalingGroup(
            name: try required(group, "AutoScalingGroupName"), arn: group.string("AutoScalingGroupARN"),
            minSize: try requiredInt(group, "MinSize"), maxSize: try requiredInt(group, "MaxSize"),
            desiredCapacity: try requiredInt(group, "DesiredCapacity"), launchTemplate: plainTemplate ?? mixedTemplate,
            usesMixedInstancesPolicy: plainTemplate == nil && mixedTemplate != nil,
            instances: try children(group, "Instances", member: "member").map { instance in
                AutoScalingInstance(
                    id: try required(instance, "InstanceId"),
                    lifecycleState: LifecycleState(rawValue: try required(instance, "LifecycleState")),
                    healthStatus: HealthStatus(rawValue: try required(instance, "HealthStatus")),
                    availabilityZone: instance.string("AvailabilityZone"),
                    instanceType: instance.string("InstanceType"),
                    launchTemplate: launchTemplateSpecification(instance["LaunchTemplate"]),
                    protectedFromScaleIn: bool(instance, "ProtectedFromScaleIn"))
            },
            targetGroupARNs: children(group, "TargetGroupARNs", member: "member").map(\.text),
            suspendedProcesses: try children(group, "SuspendedProcesses", member: "member").map {
                try required($0, "ProcessName")
            },
            tags: tags, healthCheckType: group.string("HealthCheckType"),
            healthCheckGracePeriod: optionalInt(group, "HealthCheckGracePeriod"), status: group.string("Status"),
            newInstancesProtectedFromScaleIn: bool(group, "NewInstancesProtectedFromScaleIn"),
            launchTemplateOverrides: (group.path("MixedInstancesPolicy", "LaunchTemplate", "Overrides")?.all("member")
                ?? []).map { override in
                    LaunchTemplateOverride(
                        instanceType: override.string("InstanceType"),
                        hasInstanceRequirements: override["InstanceRequirements"] != nil,
                        launchTemplate: launchTemplateSpecification(override["LaunchTemplateSpecification"]))
                },
            warmPool: warmPool(group["WarmPoolConfiguration"]))
    }
}
