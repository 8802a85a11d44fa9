import Foundation
import KilnCore

/// The shapes of the identifiers the artifacts carry, from the systems that
/// make them, checked when an artifact is read: a value that has the right
/// JSON type but could not have come from that system (a NUL, a git option
/// such as `--upload-pack=...`, a path such as `../../etc`) is a bad
/// artifact, not something to hand to git, AWS or a file name.
public enum Identifier {
    /// A git object id: SHA-1 (40 hex digits) or SHA-256 (64), lower case
    /// as git writes them (git's hash-function-transition document).
    public static func isCommit(_ text: String) -> Bool {
        (text.utf8.count == 40 || text.utf8.count == 64) && text.utf8.allSatisfy(isLowerHex)
    }

    /// An abbreviated commit id: 4 to 64 hex digits (git's `core.abbrev` minimum is 4).
    public static func isShortCommit(_ text: String) -> Bool {
        (4...64).contains(text.utf8.count) && text.utf8.allSatisfy(isLowerHex)
    }

    /// An AMI id: `ami-` and 8 or 17 hex digits (EC2's resource ids, "Resource IDs" in the EC2 user guide).
    public static func isAMI(_ text: String) -> Bool {
        guard text.hasPrefix("ami-") else { return false }
        let digits = text.utf8.dropFirst(4)
        return (digits.count == 8 || digits.count == 17) && digits.allSatisfy(isLowerHex)
    }

    /// A SHA-256 digest in hex.
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy(isLowerHex)
    }

    /// A release version as Kiln carries it (a git tag, `git describe`
    /// output, a short commit): 1 to 128 of letters, digits and `. _ + - / @`,
    /// starting with a letter or digit (so never an option such as
    /// `--upload-pack`), and no `..` (git forbids it in ref names,
    /// git-check-ref-format rule 3, and it would climb out of a folder).
    public static func isVersion(_ text: String) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-/@".utf8)
        guard let first = text.utf8.first, (1...128).contains(text.utf8.count) else { return false }
        return (isAlphanumeric(first)) && text.utf8.allSatisfy(allowed.contains) && !text.contains("..")
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// The first failing check of `checks`, as `ArtifactPayload.fieldProblem` answers.
    static func first(
        _ checks: [(field: String, value: String, valid: Bool, shape: String)]
    ) -> (field: String, problem: String)? {
        guard let failed = checks.first(where: { !$0.valid }) else { return nil }
        return (failed.field, "is \(Untrusted.quoted(failed.value)), not \(failed.shape)")
    }
}

extension CheckoutResult {
    public func fieldProblem() -> (field: String, problem: String)? {
        Identifier.first([
            ("commit", commit, Identifier.isCommit(commit), "a full commit id (40 or 64 hex digits)"),
            ("shortCommit", shortCommit, Identifier.isShortCommit(shortCommit), "a short commit id"),
            (
                "versionString", versionString, Identifier.isVersion(versionString),
                "a version (letters, digits, . _ + - / @)"
            ),
        ])
    }
}

extension BuildResult {
    public func fieldProblem() -> (field: String, problem: String)? {
        Identifier.first([
            ("commit", commit, Identifier.isCommit(commit), "a full commit id (40 or 64 hex digits)"),
            (
                "applicationVersion", applicationVersion, Identifier.isVersion(applicationVersion),
                "a version (letters, digits, . _ + - / @)"
            ),
            (
                "artifact.sha256", artifact?.sha256 ?? "", artifact.map { Identifier.isSHA256($0.sha256) } ?? true,
                "a SHA-256 in hex"
            ),
        ])
    }
}

extension ImageResult {
    public func fieldProblem() -> (field: String, problem: String)? {
        let amiChecks = amis.sorted { $0.key < $1.key }.map { region, ami in
            (field: "amis.\(region)", value: ami, valid: Identifier.isAMI(ami), shape: "an AMI id (ami-...)")
        }
        return Identifier.first(
            [
                ("amiID", amiID, Identifier.isAMI(amiID), "an AMI id (ami- and 8 or 17 hex digits)"),
                ("sourceAMI", sourceAMI, Identifier.isAMI(sourceAMI), "an AMI id (ami- and 8 or 17 hex digits)"),
                // A base image has no commit of its own outside a pipeline.
                ("commit", commit, commit.isEmpty ? role == .base : Identifier.isCommit(commit), "a full commit id"),
                (
                    "applicationVersion", applicationVersion, Identifier.isVersion(applicationVersion),
                    "a version (letters, digits, . _ + - / @)"
                ),
            ] + amiChecks)
    }
}

extension UserDataResult {
    public func fieldProblem() -> (field: String, problem: String)? {
        Identifier.first([
            ("amiID", amiID, Identifier.isAMI(amiID), "an AMI id (ami- and 8 or 17 hex digits)"),
            ("sha256", sha256, Identifier.isSHA256(sha256), "a SHA-256 in hex"),
        ])
    }
}
