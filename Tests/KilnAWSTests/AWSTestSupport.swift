import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport

/// A client for the moto stand-in (or a proxy in front of it).
func makeClient(
    endpoint: String, credentials: AWSCredentials = AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"),
    retry: RetryPolicy = RetryPolicy(maxAttempts: 10, baseDelay: 0.005, maxDelay: 0.05), log: LogWriter? = nil
) -> AWSClient {
    AWSClient(
        endpoints: AWSEndpoints(region: "us-east-1", general: endpoint), credentials: .fixed(credentials),
        http: HTTPClient(settings: HTTPSettings()), retry: retry, log: log)
}

/// The key the moto stand-in made with `--signed-user` (signatures are checked).
func signedUserCredentials(_ moto: StandIn) -> AWSCredentials {
    AWSCredentials(
        accessKeyID: moto["access_key_id"] as? String ?? "", secretAccessKey: moto["secret_access_key"] as? String ?? ""
    )
}

func fetchJSON(_ url: String, method: String = "GET", body: String = "") throws -> [String: Any] {
    let response = try HTTPClient(settings: HTTPSettings()).send(
        HTTPRequest(method: method, url: url, body: Data(body.utf8)))
    return try JSONSerialization.jsonObject(with: response.body) as? [String: Any] ?? [:]
}

/// `stats[group][service][action]` from the fault proxy, 0 when absent.
func proxyCount(_ stats: [String: Any], _ path: String...) -> Int {
    var node: Any? = stats
    for key in path { node = (node as? [String: Any])?[key] }
    return node as? Int ?? 0
}
