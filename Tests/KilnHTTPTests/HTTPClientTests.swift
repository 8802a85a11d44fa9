import Foundation
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// The HTTP client against a real server on loopback (the `http-fixture` stand-in).
@Suite(.serialized) struct HTTPClientTests {
    let client = HTTPClient(settings: HTTPSettings())

    @Test func statusHeadersAndBody() throws {
        try withStandIn("http-fixture") { server in
            let notFound = try client.send(HTTPRequest(url: "\(server.url)/status/404"))
            #expect(notFound.status == 404)
            let withHeaders = try client.send(
                HTTPRequest(url: "\(server.url)/headers?X-Kiln-Test=yes&Content-Type=text/plain"))
            #expect(withHeaders.status == 200)
            #expect(withHeaders.header("x-kiln-test") == "yes")
            let bytes = try client.send(HTTPRequest(url: "\(server.url)/bytes/100000"))
            #expect(bytes.body.count == 100_000)
        }
    }

    @Test func sendsMethodHeadersAndBody() throws {
        try withStandIn("http-fixture") { server in
            let body = Data("Action=DescribeImages&Version=2016-11-15".utf8)
            let response = try client.send(
                HTTPRequest(
                    method: "POST", url: "\(server.url)/echo?q=1",
                    headers: [
                        ("Content-Type", "application/x-www-form-urlencoded"), ("X-Amz-Date", "20261130T000000Z"),
                    ],
                    body: body))
            #expect(response.status == 200)
            let echo = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
            #expect(echo["method"] as? String == "POST")
            #expect((echo["path"] as? String)?.hasPrefix("/echo") == true)
            let headers = echoedHeaders(echo)
            #expect(headers["x-amz-date"] == "20261130T000000Z")
            #expect(headers["expect"] == nil, "no 100-continue dance")
            #expect(echo["body"] as? String == "Action=DescribeImages&Version=2016-11-15")

            let put = try client.send(HTTPRequest(method: "PUT", url: "\(server.url)/echo", body: Data()))
            let putEcho = try #require(try JSONSerialization.jsonObject(with: put.body) as? [String: Any])
            #expect(putEcho["method"] as? String == "PUT")
        }
    }

    @Test func timeoutIsATemporaryFailureNamingTheURL() throws {
        try withStandIn("http-fixture") { server in
            do {
                _ = try client.send(HTTPRequest(url: "\(server.url)/sleep/5", timeout: 0.5))
                Issue.record("expected a timeout")
            } catch let error as HTTPError {
                #expect(error.failure == .timedOut)
                #expect(error.exitStatus == .temporaryFailure)
                #expect(error.description.contains("/sleep/5"))
            }
        }
    }

    @Test func refusedConnectionIsServiceUnavailableWithoutCredentials() throws {
        let port = try closedLoopbackPort()
        do {
            _ = try client.send(HTTPRequest(url: "http://user:hunter2@127.0.0.1:\(port)/x"))
            Issue.record("expected a refused connection")
        } catch let error as HTTPError {
            #expect(error.failure == .connectionRefused)
            #expect(error.exitStatus == .serviceUnavailable)
            #expect(KilnExit.for(error) == 69)
            #expect(error.description.contains("127.0.0.1:\(port)/x"))
            #expect(!error.description.contains("hunter2"))
            #expect(!error.description.contains("user"))
        }
    }

    @Test func proxyFromTheEnvironmentIsUsedAndNoProxyBypassesIt() throws {
        try withStandIn("http-fixture") { proxy in
            // The fixture plays the proxy: it sees the absolute URL curl asks it
            // for. The name is never resolved or contacted: the proxy answers.
            let viaProxy = HTTPClient(settings: HTTPSettings(job: JobContext(environment: ["HTTP_PROXY": proxy.url])))
            let response = try viaProxy.send(HTTPRequest(url: "http://kiln-proxy-test.invalid/echo"))
            let echo = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
            #expect(echo["path"] as? String == "/echo")
            #expect(echoedHeaders(echo)["host"] == "kiln-proxy-test.invalid")

            // NO_PROXY: straight to the fixture, past a proxy that is not there.
            let port = try closedLoopbackPort()
            let bypass = HTTPClient(
                settings: HTTPSettings(
                    job: JobContext(environment: [
                        "http_proxy": "http://127.0.0.1:\(port)", "NO_PROXY": "127.0.0.1,localhost",
                    ])))
            #expect(try bypass.send(HTTPRequest(url: "\(proxy.url)/status/204")).status == 204)
        }
    }

    @Test func caBundleFromSSLCertFile() {
        let settings = HTTPSettings(
            job: JobContext(environment: ["SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"]))
        #expect(settings.caBundle == "/etc/ssl/certs/ca-certificates.crt")
    }
}

/// The fixture echoes headers as [name, value] pairs; lower-cased names here.
func echoedHeaders(_ echo: [String: Any]) -> [String: String] {
    var headers: [String: String] = [:]
    for pair in echo["headers"] as? [[String]] ?? [] where pair.count == 2 {
        headers[pair[0].lowercased()] = pair[1]
    }
    return headers
}

/// A loopback port with nothing listening on it.
func closedLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &address) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            guard bind(fd, raw, length) == 0, getsockname(fd, raw, &length) == 0 else {
                throw SystemCallError("bind a loopback port", errno: errno)
            }
        }
    }
    return UInt16(bigEndian: address.sin_port)
}
