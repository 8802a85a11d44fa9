import Foundation
import KilnCore

/// Pauses in a rotation (`checkpoints: [25%, 50%]`, `checkpoint_soak: 60s`),
/// after the batch that brings the share of instances replaced to each
/// percentage, with the health gate (and its alarms) still judging the new
/// instances: a failure during a soak rolls back like any other. Modelled on
/// EC2 Auto Scaling instance refresh's `CheckpointPercentages` and
/// `CheckpointDelay` (EC2 Auto Scaling API Reference, `RefreshPreferences`;
/// user guide, "Add checkpoints to an instance refresh"): percentages in
/// ascending order, each unique, at most 100; "because instances are
/// replaced in batches, the percentage ... can be higher than the
/// checkpoint", so a checkpoint stops after the first batch that reaches
/// it. Unlike an instance refresh, Kiln always replaces every instance: a
/// last checkpoint below 100 does not end the rotation there.
public struct Checkpoints: Sendable, Equatable {
    /// Shares of the instances to replace, ascending, each in 1...100.
    public var percentages: [Int]
    /// How long each checkpoint holds. Instance refresh's `CheckpointDelay`
    /// defaults to 3600 s; Kiln's default is canary_soak's 60 s, since a
    /// GitLab job waits through it (and a job's default timeout is 1 h).
    public var soak: TimeInterval

    public static let defaultSoak: TimeInterval = 60
    /// `CheckpointDelay` is at most 172800 s (48 h) (API Reference).
    public static let longestSoak = Seconds(172_800)

    public init(percentages: [Int], soak: TimeInterval = Checkpoints.defaultSoak) {
        self.percentages = percentages
        self.soak = soak
    }

    /// Where the rotation stops: after batch `afterBatch` (1-based), which
    /// brings the replaced instances to `replaced` of the total, reaching
    /// every percentage in `percentages` (two checkpoints one batch reaches
    /// are one stop).
    public struct Stop: Sendable, Equatable {
        public var afterBatch: Int
        public var percentages: [Int]
        public var replaced: Int
        public var total: Int

        public var label: String { percentages.map { "\($0)%" }.joined(separator: ", ") }
    }

    /// The stops for a schedule: `batches` holds the instances each batch
    /// replaces, in order. A pure function: the plan prints it and the
    /// rotation follows it.
    public func stops(batches: [Int]) -> [Stop] {
        let total = batches.reduce(0, +)
        guard total > 0 else { return [] }
        var stops: [Stop] = []
        var replaced = 0
        var pending = percentages[...]
        for (index, size) in batches.enumerated() {
            replaced += size
            var reached: [Int] = []
            // replaced/total >= p/100, in integers so 1/3 of 3 is 33.3...% exactly.
            while let next = pending.first, replaced * 100 >= next * total {
                reached.append(next)
                pending.removeFirst()
            }
            if !reached.isEmpty {
                stops.append(Stop(afterBatch: index + 1, percentages: reached, replaced: replaced, total: total))
            }
        }
        return stops
    }

    /// `checkpoints` and `checkpoint_soak` of `environments.<env>.rotate`.
    static func load(
        _ node: ConfigNode?, soak soakNode: ConfigNode?, keyPath: String, file: ConfigFile
    ) throws -> Checkpoints? {
        guard let node else {
            if let soakNode {
                // "If you specify a value for [CheckpointDelay], you must also
                // specify a value for CheckpointPercentages" (API Reference).
                throw file.fail(soakNode, "\(keyPath).checkpoint_soak", "needs checkpoints (such as [25%, 50%])")
            }
            return nil
        }
        var percentages: [Int] = []
        for (index, item) in file.listOrOne(node, "\(keyPath).checkpoints").enumerated() {
            let path = "\(keyPath).checkpoints[\(index)]"
            let text = try file.scalar(item, path).trimmingCharacters(in: .whitespaces)
            let digits = text.hasSuffix("%") ? String(text.dropLast()) : text
            guard let value = Int(digits), (1...100).contains(value) else {
                throw file.fail(item, path, "expected a percentage from 1% to 100%, got \(Untrusted.quoted(text))")
            }
            if let last = percentages.last, value <= last {
                throw file.fail(item, path, "\(value)% after \(last)%: checkpoints go in ascending order, each once")
            }
            percentages.append(value)
        }
        guard !percentages.isEmpty else {
            throw file.fail(
                node, "\(keyPath).checkpoints", "an empty list: name at least one percentage, or leave it out")
        }
        var checkpoints = Checkpoints(percentages: percentages)
        if let soakNode {
            let soak: Seconds = try file.value(soakNode, "\(keyPath).checkpoint_soak")
            guard soak <= longestSoak else {
                throw file.fail(soakNode, "\(keyPath).checkpoint_soak", "at most 48h, got \(soak)")
            }
            checkpoints.soak = soak.value
        }
        return checkpoints
    }
}
