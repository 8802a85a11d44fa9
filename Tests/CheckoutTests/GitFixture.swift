import Foundation
import KilnCore
import KilnTestSupport

/// Repositories a test builds with the git command line: a work repository
/// to commit in, and bare repositories under `served` that the git
/// stand-in serves over smart HTTP.
final class GitFixture: @unchecked Sendable {
    let folder = TemporaryDirectory("kiln-git")
    var served: String { folder.file("served") }
    let runner = ProcessRunner(
        log: LogWriter(sink: MemorySink(), style: .plain, secrets: SecretMask()), cancellation: Cancellation())

    init() throws {
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
    }

    /// Runs git with a fixed identity and dates that move on per commit.
    @discardableResult
    func git(_ arguments: [String], in directory: String) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_AUTHOR_NAME"] = "Kiln Test"
        environment["GIT_AUTHOR_EMAIL"] = "test@kiln.invalid"
        environment["GIT_COMMITTER_NAME"] = "Kiln Test"
        environment["GIT_COMMITTER_EMAIL"] = "test@kiln.invalid"
        environment["GIT_CONFIG_NOSYSTEM"] = "1"
        environment["HOME"] = folder.path
        let result = try runner.check(
            Command(
                "git", ["-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"] + arguments,
                environment: environment, workingDirectory: directory),
            what: "git \(arguments.first ?? "")", failure: .internalError, output: .capture)
        return String(decoding: result.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new work repository with a bare twin at `served/<project>.git`.
    func makeProject(_ project: String) throws -> String {
        let work = folder.file("work/\(project)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try git(["init", "-q"], in: work)
        let bare = "\(served)/\(project).git"
        try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
        try git(["init", "-q", "--bare"], in: bare)
        // Lets clients fetch a commit by id (as GitLab allows), for commits
        // no advertised ref reaches.
        try git(["config", "uploadpack.allowAnySHA1InWant", "true"], in: bare)
        try git(["remote", "add", "served", bare], in: work)
        return work
    }

    /// Writes files and commits them; returns the commit.
    @discardableResult
    func commit(_ work: String, _ files: [String: String], message: String) throws -> String {
        for (path, content) in files {
            let full = (work as NSString).appendingPathComponent(path)
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try git(["add", "-A"], in: work)
        try git(["commit", "-q", "-m", message], in: work)
        return try git(["rev-parse", "HEAD"], in: work)
    }

    func push(_ work: String, _ refspecs: [String] = ["--all"]) throws {
        try git(["push", "-q", "served"] + refspecs, in: work)
    }
}

/// A file of pseudo-random bytes that git cannot compress much.
func randomText(bytes: Int, seed: UInt64) -> String {
    var state = seed
    var out = ""
    out.reserveCapacity(bytes)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for index in 0..<bytes {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        out.append(index % 80 == 79 ? "\n" : alphabet[Int(state >> 33) % alphabet.count])
    }
    return out
}
