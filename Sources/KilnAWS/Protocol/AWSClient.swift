import Foundation
import KilnCore
import KilnHTTP

/// Kiln's AWS client for one region: the transport, signed with the one
/// credential chain. The service files (EC2, Auto Scaling, ELBv2, STS, SSM, CloudWatch)
/// add the typed operations.
public final class AWSClient: Sendable {
    public let transport: AWSTransport
    public let credentials: CredentialChain

    public init(transport: AWSTransport, credentials: CredentialChain) {
        self.transport = transport
        self.credentials = credentials
    }

    public convenience init(
        endpoints: AWSEndpoints, credentials: CredentialChain, http: HTTPClient,
        retry: RetryPolicy = RetryPolicy(), log: LogWriter? = nil, clock: Clock = .system
    ) {
        self.init(
            transport: AWSTransport(endpoints: endpoints, http: http, retry: retry, log: log, clock: clock),
            credentials: credentials)
    }

    public var region: String { transport.region }
    public var endpoints: AWSEndpoints { transport.endpoints }
    public var retry: RetryPolicy { transport.retry }
    public var calls: CallCounter { transport.calls }

    /// One Query API call; returns the answer's root element.
    public func query(
        _ service: AWSService, _ action: String, _ parameters: QueryParameters = [:], mutation: Mutation = .readOnly
    ) throws -> XMLElement {
        try transport.query(service, action, parameters, mutation: mutation, signedWith: credentials.credentials())
    }

    /// A Query call followed page by page to the end: `NextToken` in the
    /// request and `NextToken`/`nextToken` in the answer, or the names an
    /// action uses instead (ELBv2's `Marker` and `NextMarker`).
    public func queryPages<Item>(
        _ service: AWSService, _ action: String, _ parameters: QueryParameters = [:],
        requestToken: String = "NextToken", answerTokens: [String] = ["NextToken", "nextToken"],
        items: (XMLElement) throws -> [Item]
    ) throws -> [Item] {
        var all: [Item] = []
        var parameters = parameters
        var seen = Set<String>()
        while true {
            let page = try query(service, action, parameters)
            all += try items(page)
            guard let token = answerTokens.lazy.compactMap({ page.first(named: $0)?.text }).first,
                !token.isEmpty
            else { break }
            guard seen.insert(token).inserted else {
                throw AWSMalformedResponse(
                    service: service.rawValue, action: action, problem: "\(requestToken) repeats")
            }
            parameters[requestToken] = token
        }
        return all
    }

    /// One JSON 1.1 call (SSM).
    public func json(
        _ service: AWSService, target: String, _ body: [String: any Sendable], mutation: Mutation = .readOnly
    ) throws -> [String: Any] {
        try transport.json(service, target: target, body, mutation: mutation, signedWith: credentials.credentials())
    }
}
