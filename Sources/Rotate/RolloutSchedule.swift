import Foundation
import KilnArtifacts

/// The batches a rotation launches, in order: worked out once from the
/// strategy, the batch size and the group's starting desired capacity, and
/// the same for `kiln-rotate plan` and for the run (and for a resumed run,
/// which numbers its batches on from how many instances are replaced).
struct RolloutSchedule: Sendable, Equatable {
    /// Instances launched by each batch.
    let batches: [Int]

    init(strategy: RotationStrategy, batch: BatchSize, desired: Int, toReplace: Int) {
        let size = strategy == .blueGreen ? max(1, toReplace) : batch.instances(of: max(1, desired))
        var batches: [Int] = []
        var remaining = toReplace
        if strategy == .canary && remaining > 0 {
            batches.append(1)
            remaining -= 1
        }
        while remaining > 0 {
            batches.append(min(size, remaining))
            remaining -= batches.last!
        }
        self.batches = batches
    }

    var count: Int { batches.count }

    /// The batch whose last instance makes `replaced` (1-based), if one ends there.
    func batchEnding(atReplaced replaced: Int) -> Int? {
        var done = 0
        for (index, size) in batches.enumerated() {
            done += size
            if done == replaced { return index + 1 }
            if done > replaced { return nil }
        }
        return nil
    }

    /// The batch to launch next when `replaced` instances are on the release
    /// (1-based), with its size; nil when the schedule is done.
    func next(afterReplacing replaced: Int) -> (number: Int, size: Int)? {
        var done = 0
        for (index, size) in batches.enumerated() {
            if replaced < done + size { return (index + 1, done + size - replaced) }
            done += size
        }
        return nil
    }
}
