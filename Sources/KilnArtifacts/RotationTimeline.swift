import Foundation

/// What a rotation saw, poll by poll, and what it did when: the picture's
/// data (`RotationPicture`). Recorded by the rotation's one thread; a value,
/// so the report carries it out of every outcome; kept across the runs of
/// one rotation in `RotationTimelineRecord`.
public struct RotationTimeline: Codable, Sendable, Equatable {
    /// One poll of the group.
    public struct Sample: Codable, Sendable, Equatable {
        /// Seconds since the rotation started.
        public var seconds: Double
        /// Instances serving: old ones InService and Healthy, new ones past the gate.
        public var healthy: Int
        /// Instances in the group, neither terminating nor in standby.
        public var groupSize: Int
        /// Instances on the release being deployed (during a rollback too).
        public var newRelease: Int

        public init(seconds: Double, healthy: Int, groupSize: Int, newRelease: Int) {
            self.seconds = seconds
            self.healthy = healthy
            self.groupSize = groupSize
            self.newRelease = newRelease
        }
    }

    public enum EventKind: String, Codable, Sendable, CaseIterable {
        case batchStarted = "batch started"
        case batchConfirmed = "batch confirmed"
        case checkpoint
        case failure
        case rollback
    }

    /// A moment the rotation acted or decided.
    public struct Event: Codable, Sendable, Equatable {
        public var seconds: Double
        public var kind: EventKind
        /// `batch 2 of 3`, `checkpoint 50%`, the failure's text.
        public var label: String

        public init(seconds: Double, kind: EventKind, label: String) {
            self.seconds = seconds
            self.kind = kind
            self.label = label
        }
    }

    public var samples: [Sample] = []
    public var events: [Event] = []

    public init(samples: [Sample] = [], events: [Event] = []) {
        self.samples = samples
        self.events = events
    }

    public mutating func record(_ sample: Sample) { samples.append(sample) }

    public mutating func mark(_ kind: EventKind, _ label: String, at seconds: Double) {
        events.append(Event(seconds: seconds, kind: kind, label: label))
    }
}
