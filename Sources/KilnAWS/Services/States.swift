import Foundation

// States AWS names with strings. Each is a value type with the known states
// as constants, so code compares states, not text; a state AWS adds later
// is kept as AWS wrote it (an enum would refuse to decode it). A string
// literal makes one (`image.state == "available"`), as in the SDKs' types.

/// What a state type holds: AWS's own word for it.
public protocol AWSState: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral
where RawValue == String {
    init(rawValue: String)
}

extension AWSState {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
}

/// An AMI's state (EC2 `ImageState`).
public struct ImageState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending: ImageState = "pending"
    public static let available: ImageState = "available"
    public static let invalid: ImageState = "invalid"
    public static let deregistered: ImageState = "deregistered"
    public static let failed: ImageState = "failed"
    public static let error: ImageState = "error"

    /// It will never become available.
    public var isFinalFailure: Bool { [.invalid, .deregistered, .failed, .error].contains(self) }
}

/// An EC2 instance's state (`InstanceStateName`).
public struct InstanceState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending: InstanceState = "pending"
    public static let running: InstanceState = "running"
    public static let shuttingDown: InstanceState = "shutting-down"
    public static let terminated: InstanceState = "terminated"
    public static let stopping: InstanceState = "stopping"
    public static let stopped: InstanceState = "stopped"
}

/// An EBS snapshot's state (`SnapshotState`).
public struct SnapshotState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending: SnapshotState = "pending"
    public static let completed: SnapshotState = "completed"
    public static let error: SnapshotState = "error"
}

/// Where an instance is in its group's lifecycle (Auto Scaling `LifecycleState`).
public struct LifecycleState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending: LifecycleState = "Pending"
    public static let pendingWait: LifecycleState = "Pending:Wait"
    public static let pendingProceed: LifecycleState = "Pending:Proceed"
    public static let quarantined: LifecycleState = "Quarantined"
    public static let inService: LifecycleState = "InService"
    public static let terminating: LifecycleState = "Terminating"
    public static let terminatingWait: LifecycleState = "Terminating:Wait"
    public static let terminatingProceed: LifecycleState = "Terminating:Proceed"
    public static let terminated: LifecycleState = "Terminated"
    public static let detaching: LifecycleState = "Detaching"
    public static let detached: LifecycleState = "Detached"
    public static let enteringStandby: LifecycleState = "EnteringStandby"
    public static let standby: LifecycleState = "Standby"

    /// On its way out of the group, or gone.
    public var isTerminating: Bool {
        [.terminating, .terminatingWait, .terminatingProceed, .terminated].contains(self)
    }
    /// Held by a lifecycle hook.
    public var isWaitingOnHook: Bool { self == .pendingWait || self == .terminatingWait }
}

/// An instance's health as its group judges it (`HealthStatus`).
public struct HealthStatus: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let healthy: HealthStatus = "Healthy"
    public static let unhealthy: HealthStatus = "Unhealthy"
}

/// A target's health in a target group (ELBv2 `TargetHealthStateEnum`).
public struct TargetHealthState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let initial: TargetHealthState = "initial"
    public static let healthy: TargetHealthState = "healthy"
    public static let unhealthy: TargetHealthState = "unhealthy"
    public static let unused: TargetHealthState = "unused"
    public static let draining: TargetHealthState = "draining"
    public static let unavailable: TargetHealthState = "unavailable"
}

/// A CloudWatch alarm's state (`StateValue`: OK, ALARM, INSUFFICIENT_DATA).
public struct AlarmState: AWSState {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let ok: AlarmState = "OK"
    public static let alarm: AlarmState = "ALARM"
    public static let insufficientData: AlarmState = "INSUFFICIENT_DATA"
}
