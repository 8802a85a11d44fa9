import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// Where a rotation stands, as its journal records it. In the group's tag
/// it is text (`starting`, `rolling 2/3`, `rollback`, `rollback 1/2`,
/// `finishing`, `finishing rollback`, `failed`), read back into this value;
/// nothing compares the text.
public enum RotationPhase: Sendable, Equatable, CustomStringConvertible {
    /// Batch `number` of `of`.
    public struct Batch: Sendable, Equatable {
        public var number: Int
        public var of: Int
    }

    /// The launch template version is made and the processes suspended; no batch yet.
    case starting
    case rolling(Batch?)
    /// Going back to the release before; a run that finds this finishes it first.
    case rollingBack(Batch?)
    /// Every instance is on the release the run converged on (the new one,
    /// or the old one after a rollback); what is left is the last phase:
    /// sizes and processes restored, the journal deleted. A run that finds
    /// this does only that, so the last phase is resumable too.
    case finishing(rollback: Bool)
    /// Failed with `--no-rollback`: left for a person.
    case failed

    public var isRollback: Bool {
        switch self {
        case .rollingBack, .finishing(rollback: true): true
        default: false
        }
    }

    /// The batch the journal records, when the phase is one.
    public var batch: Batch? {
        switch self {
        case .rolling(let batch), .rollingBack(let batch): batch
        default: nil
        }
    }

    /// The tag's text.
    public var description: String {
        switch self {
        case .starting: "starting"
        case .rolling(let batch): Self.text("rolling", batch)
        case .rollingBack(let batch): Self.text("rollback", batch)
        case .finishing(let rollback): rollback ? "finishing rollback" : "finishing"
        case .failed: "failed"
        }
    }

    private static func text(_ word: String, _ batch: Batch?) -> String {
        batch.map { "\(word) \($0.number)/\($0.of)" } ?? word
    }

    /// Reads the tag's text; a missing or unknown one reads as `starting`
    /// (the run then converges from what the group holds).
    public init(tag: String?) {
        let words = (tag ?? "").split(separator: " ", maxSplits: 1)
        let batch: Batch? =
            words.count == 2
            ? {
                let numbers = words[1].split(separator: "/").compactMap { Int($0) }
                return numbers.count == 2 ? Batch(number: numbers[0], of: numbers[1]) : nil
            }() : nil
        switch words.first {
        case "rolling": self = .rolling(batch)
        case "rollback": self = .rollingBack(batch)
        case "finishing": self = .finishing(rollback: words.count == 2 && words[1] == "rollback")
        case "failed": self = .failed
        default: self = .starting
        }
    }
}

/// What a rotation writes on its group as it goes, so that a re-run can
/// finish it and a second run can see it: the run, the release, the launch
/// template versions from and to, the sizes before, the processes Kiln
/// suspended, the phase, and a heartbeat. Kept in the group's own tags
/// (no other store to set up), one tag per field: a tag value holds 256
/// characters at most.
public struct RotationJournal: Sendable, Equatable {
    /// A pause under way (the canary's soak, a checkpoint's): the batch it
    /// follows and when it began, so that a resumed run waits only what
    /// remains of it.
    public struct Soak: Sendable, Equatable {
        public var afterBatch: Int
        public var started: Date
    }

    public var run: String
    public var release: String
    public var fromVersion: Int
    public var toVersion: Int
    public var minSize: Int
    public var maxSize: Int
    public var desiredCapacity: Int
    public var suspendedByKiln: [String]
    public var phase: RotationPhase
    public var heartbeat: Date
    /// How this rotation retires old instances, chosen when it began (a
    /// resumed run goes on the same way, and its last phase knows whether it
    /// put scale-in protection on new instances). Absent in a journal Kiln
    /// wrote before it retired in bulk: chosen again from the group.
    public var retirement: RetirementMethod?
    /// The last pause begun; kept after it ends (a resumed run finds nothing left of it).
    public var soak: Soak?

    static let prefix = KilnTag.rotationJournalPrefix
    static let keys = [
        "run", "release", "versions", "sizes", "suspended", "phase", "heartbeat", "retirement", "soak",
    ].map { prefix + $0 }
    /// To the millisecond: what a resumed run waits is what remains.
    static func soakDate() -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }

    var tags: [String: String] {
        var tags = [
            Self.prefix + "run": run,
            Self.prefix + "release": release,
            Self.prefix + "versions": "\(fromVersion)>\(toVersion)",
            Self.prefix + "sizes": "\(minSize)/\(maxSize)/\(desiredCapacity)",
            Self.prefix + "suspended": suspendedByKiln.joined(separator: ","),
            Self.prefix + "phase": phase.description,
            Self.prefix + "heartbeat": ISO8601DateFormatter().string(from: heartbeat),
        ]
        if let retirement { tags[Self.prefix + "retirement"] = retirement.rawValue }
        // `batch 2 since 2026-12-02T02:40:00.123Z`
        if let soak {
            tags[Self.prefix + "soak"] = "batch \(soak.afterBatch) since \(Self.soakDate().string(from: soak.started))"
        }
        return tags
    }

    /// The journal in a group's tags, if one is there.
    init?(tags: [String: String]) {
        guard let run = tags[Self.prefix + "run"], let release = tags[Self.prefix + "release"],
            let versions = tags[Self.prefix + "versions"]?.split(separator: ">").compactMap({ Int($0) }),
            versions.count == 2,
            let sizes = tags[Self.prefix + "sizes"]?.split(separator: "/").compactMap({ Int($0) }), sizes.count == 3,
            let heartbeat = tags[Self.prefix + "heartbeat"].flatMap({ ISO8601DateFormatter().date(from: $0) })
        else { return nil }
        self.run = run
        self.release = release
        fromVersion = versions[0]
        toVersion = versions[1]
        minSize = sizes[0]
        maxSize = sizes[1]
        desiredCapacity = sizes[2]
        suspendedByKiln = (tags[Self.prefix + "suspended"] ?? "").split(separator: ",").map(String.init)
        phase = RotationPhase(tag: tags[Self.prefix + "phase"])
        self.heartbeat = heartbeat
        retirement = tags[Self.prefix + "retirement"].flatMap(RetirementMethod.init(rawValue:))
        // An unreadable soak reads as none: the run goes on without the rest of that pause.
        let soakWords = (tags[Self.prefix + "soak"] ?? "").split(separator: " ")
        if soakWords.count == 4, soakWords[0] == "batch", soakWords[2] == "since", let batch = Int(soakWords[1]),
            let started = Self.soakDate().date(from: String(soakWords[3]))
        {
            soak = Soak(afterBatch: batch, started: started)
        }
    }

    init(
        run: String, release: String, fromVersion: Int, toVersion: Int, minSize: Int, maxSize: Int,
        desiredCapacity: Int, suspendedByKiln: [String], phase: RotationPhase, heartbeat: Date,
        retirement: RetirementMethod? = nil
    ) {
        self.run = run
        self.release = release
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.minSize = minSize
        self.maxSize = maxSize
        self.desiredCapacity = desiredCapacity
        self.suspendedByKiln = suspendedByKiln
        self.phase = phase
        self.heartbeat = heartbeat
        self.retirement = retirement
    }

    /// `adding`: other tags of the group written in the same call.
    func save(_ client: AWSClient, group: String, adding others: [String: String] = [:]) throws {
        try client.createOrUpdateTags(
            autoScalingGroup: group, tags: tags.merging(others) { mine, _ in mine }, propagateAtLaunch: false)
    }

    static func clear(_ client: AWSClient, group: String) throws {
        try client.deleteTags(autoScalingGroup: group, keys: keys)
    }
}
