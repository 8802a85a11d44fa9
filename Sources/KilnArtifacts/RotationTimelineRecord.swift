import Foundation
import KilnCore

/// rotation-<env>.timeline.json: the picture's samples and events of one
/// rotation, run by run, written by kiln-rotate beside its report at every
/// poll. A run that resumes the rotation (the same group, release and launch
/// template version) in the same folder adds its own, so that its picture
/// shows the whole rotation, not only what it saw itself. The group's journal
/// (tags of at most 256 characters) cannot hold them.
public struct RotationTimelineRecord: ArtifactPayload, Equatable {
    public static let schemaName = "rotation-timeline"
    public static let schemaVersion = 1

    /// What one run saw, from its own start.
    public struct Run: Codable, Sendable, Equatable {
        /// The run's `<pipeline>/<job>`.
        public var run: String
        public var startedAt: Date
        public var timeline: RotationTimeline

        public init(run: String, startedAt: Date, timeline: RotationTimeline) {
            self.run = run
            self.startedAt = startedAt
            self.timeline = timeline
        }
    }

    public var environment: String
    public var autoScalingGroup: String
    public var release: String
    public var toVersion: Int
    public var runs: [Run]

    public init(environment: String, autoScalingGroup: String, release: String, toVersion: Int, runs: [Run]) {
        self.environment = environment
        self.autoScalingGroup = autoScalingGroup
        self.release = release
        self.toVersion = toVersion
        self.runs = runs
    }

    public static func fileName(environment: String) -> String { "rotation-\(environment).timeline.json" }

    /// The same rotation as another run's record: its group, release and launch template version.
    public func isSameRotation(as other: RotationTimelineRecord) -> Bool {
        autoScalingGroup == other.autoScalingGroup && release == other.release && toVersion == other.toVersion
    }

    /// `run`'s timeline in place of the one it had (or after the others).
    public mutating func update(_ run: Run) {
        if let index = runs.firstIndex(where: { $0.run == run.run }) {
            runs[index] = run
        } else {
            runs.append(run)
        }
    }

    /// Every run's samples and events as one timeline, in seconds from the first run's start.
    public var whole: RotationTimeline {
        guard let origin = runs.map(\.startedAt).min() else { return RotationTimeline() }
        var whole = RotationTimeline()
        for run in runs.sorted(by: { $0.startedAt < $1.startedAt }) {
            let shift = run.startedAt.timeIntervalSince(origin)
            for sample in run.timeline.samples {
                var moved = sample
                moved.seconds += shift
                whole.record(moved)
            }
            for event in run.timeline.events {
                whole.mark(event.kind, event.label, at: event.seconds + shift)
            }
        }
        return whole
    }
}
