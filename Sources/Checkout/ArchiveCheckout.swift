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
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-archive-\(UUID().uuidString).tar.gz"
        ).path
        // The partial download goes on every way out: an error (defer), and a
        // cancel (GitLab's SIGTERM), also one that comes between transfers.
        let removal = checkout.runner.cancellation.onCancel { _ in _ = unlink(temporary) }
        defer {
            removal.end()
            try? FileManager.default.removeItem(atPath: temporary)
        }
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
                var download = HTTPRequest(url: archiveURL, headers: headers, timeout: 3600)
                download.stallTimeout = request.noProgressTimeout
                download.cancellation = checkout.runner.cancellation
                let (response, bytes) = try checkout.http.download(download, to: temporary)
                switch response.status {
                case 200..<300:
                    checkout.log.line("archive: \(CheckoutRun.mebibytes(bytes)) from \(HTTPError.redacted(archiveURL))")
                    return bytes
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
        }
        try clock.time("unpack") {
            try FileManager.default.createDirectory(atPath: request.target, withIntermediateDirectories: true)
            try checkout.clearTarget()
            // GitLab's archives hold one top folder (`<project>-<sha>-<sha>/`).
            try checkout.runner.check(
                Command("tar", ["-xzf", temporary, "-C", request.target, "--strip-components=1", "--no-same-owner"]),
                what: "unpacking the archive", failure: .serviceUnavailable)
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
}
