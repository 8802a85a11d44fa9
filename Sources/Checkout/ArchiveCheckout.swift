import Foundation
import KilnArtifacts
import KilnCore
import KilnGit
import KilnHTTP

/// The archive strategy: the commit's files (no history) from GitLab's
/// repository archive API, with the job token in the `JOB-TOKEN` header.
struct ArchiveCheckout {
    let checkout: CheckoutRun
    var request: CheckoutRequest { checkout.request }

    var archiveURL: String {
        // A project path goes URL-encoded (`group%2Fapp`), as the API wants.
        let project =
            request.project.addingPercentEncoding(
                withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? request.project
        return "\(request.serverURL)/api/v4/projects/\(project)/repository/archive.tar.gz?sha=\(request.commit)"
    }

    func run() throws -> CheckoutResult {
        var clock = PhaseClock()
        if request.submodules != .none {
            checkout.log.warning(
                """
                GitLab's archives hold no submodules: \
                GIT_SUBMODULE_STRATEGY=\(request.submodules.rawValue) is not applied under the archive strategy
                """
            )
        }
        // The archive is unpacked while it downloads, into a folder of the
        // target's (the same file system: its entries are then moved into
        // place by rename), so that nothing is stored on the way and a failed
        // download leaves the last checkout as it was. The folder goes on every
        // way out: an error, and a cancel (GitLab's SIGTERM: the runner stops
        // tar, the download is aborted, and the error unwinds through here).
        let fileManager = FileManager.default
        let staging = (request.target as NSString).appendingPathComponent(KilnMark.unpackingFolder)
        try fileManager.createDirectory(atPath: request.target, withIntermediateDirectories: true)
        try? fileManager.removeItem(atPath: staging)  // a killed run's
        defer { try? fileManager.removeItem(atPath: staging) }
        var headers: [(name: String, value: String)] = []
        if let token = request.credentials?.password { headers.append(("JOB-TOKEN", token)) }
        let bytes = try clock.time("download") { () -> Int in
            try checkout.retry.run(
                "archive", log: checkout.log,
                retryable: { error in
                    guard let error = error as? HTTPError, error.isRetryable else { return nil }
                    return error.detail
                }
            ) {
                try? fileManager.removeItem(atPath: staging)
                try fileManager.createDirectory(atPath: staging, withIntermediateDirectories: false)
                return try downloadAndUnpack(into: staging, headers: headers)
            }
        }
        try clock.time("unpack") {
            try checkout.clearTarget()
            for name in try fileManager.contentsOfDirectory(atPath: staging) {
                let destination = (request.target as NSString).appendingPathComponent(name)
                // Without clean flags the archive goes over what is there, as tar would put it.
                if fileManager.fileExists(atPath: destination) { try fileManager.removeItem(atPath: destination) }
                try fileManager.moveItem(
                    atPath: (staging as NSString).appendingPathComponent(name), toPath: destination)
            }
            try KilnMark.write(
                (request.target as NSString).appendingPathComponent(KilnMark.archiveFile),
                "unpacked by kiln-checkout from the archive of \(request.commit)\n")
        }
        let received = { () -> TransferProgress in
            var progress = TransferProgress(); progress.receivedBytes = bytes; return progress
        }()
        return checkout.result(
            version: String(request.commit.prefix(8)), info: nil, submodules: [], received: received,
            phases: clock.phases, discarded: nil)
    }

    /// One attempt: GitLab's answer streamed into `tar` (gzip through tar's
    /// -z), unpacked into `folder`. Returns the bytes received.
    private func downloadAndUnpack(into folder: String, headers: [(name: String, value: String)]) throws -> Int {
        final class Answer: @unchecked Sendable {
            // Written by the runner's input thread, read here after it has been joined.
            var response: HTTPResponse?
            var bytes = 0
            var readerStopped = false
        }
        let answer = Answer()
        var asked = HTTPRequest(url: archiveURL, headers: headers, timeout: 3600)
        asked.stallTimeout = request.noProgressTimeout
        asked.cancellation = checkout.runner.cancellation
        let download = asked
        let http = checkout.http
        // GitLab's archives hold one top folder (`<project>-<sha>-<sha>/`). -m: the
        // files' times are now, as git's checkout leaves them (and one utimensat
        // per file fewer); the owner is the job's.
        let tar = Command(
            "tar", ["-xzmf", "-", "-C", folder, "--strip-components=1", "--no-same-owner"],
            environment: checkout.toolEnvironment)
        let unpacked = try checkout.runner.run(
            tar,
            input: { fd in
                do {
                    (answer.response, answer.bytes) = try http.download(
                        download, into: fd, named: "the archive into tar")
                } catch let error as SystemCallError where error.errno == EPIPE {
                    // tar stopped reading: its exit status below says why.
                    answer.readerStopped = true
                }
            })
        if let response = answer.response {
            switch response.status {
            case 200..<300: break
            case 401, 403:
                throw KilnError(
                    .permissionDenied,
                    "GitLab refused the job token for the archive of \(request.project) (HTTP \(response.status))")
            case 404:
                throw KilnError(
                    .serviceUnavailable,
                    """
                    no archive of commit \(request.commit) \
                    in project \(request.project) (HTTP 404 from \(request.serverURL))
                    """
                )
            default:
                throw KilnError(
                    .serviceUnavailable,
                    "archive of \(request.commit): HTTP \(response.status) from \(request.serverURL)")
            }
        }
        guard unpacked.termination.succeeded, !answer.readerStopped else {
            throw ProcessFailure(result: unpacked, exitStatus: .serviceUnavailable, what: "unpacking the archive")
        }
        let received = CheckoutRun.mebibytes(answer.bytes)
        checkout.log.line("archive: \(received) from \(HTTPError.redacted(archiveURL)), unpacked as it came")
        return answer.bytes
    }

}
