import Foundation
import KilnCore

/// The AWS services Kiln calls, with what their requests need.
public enum AWSService: String, Sendable, CaseIterable {
    case ec2, autoscaling, elasticloadbalancing, sts, ssm, cloudwatch

    /// The name in the signature's credential scope: CloudWatch signs as
    /// `monitoring` (its endpoint prefix, "Amazon CloudWatch endpoints and
    /// quotas"); the others sign with their own name.
    public var signingName: String {
        switch self {
        case .cloudwatch: "monitoring"
        default: rawValue
        }
    }

    /// The Query API version (`Version=`); SSM speaks JSON 1.1 instead.
    public var apiVersion: String {
        switch self {
        case .ec2: "2016-11-15"
        case .autoscaling: "2011-01-01"
        case .elasticloadbalancing: "2015-12-01"
        case .sts: "2011-06-15"
        case .ssm: "2014-11-06"
        case .cloudwatch: "2010-08-01"
        }
    }

    /// The `AWS_ENDPOINT_URL_<SERVICE>` suffix: the service id, upper case,
    /// spaces as underscores (AWS's "Service-specific endpoints" reference).
    public var endpointVariableSuffix: String {
        switch self {
        case .ec2: "EC2"
        case .autoscaling: "AUTO_SCALING"
        case .elasticloadbalancing: "ELASTIC_LOAD_BALANCING_V2"
        case .sts: "STS"
        case .ssm: "SSM"
        case .cloudwatch: "CLOUDWATCH"
        }
    }

    var hostPrefix: String {
        switch self {
        case .ec2: "ec2"
        case .autoscaling: "autoscaling"
        case .elasticloadbalancing: "elasticloadbalancing"
        case .sts: "sts"
        case .ssm: "ssm"
        case .cloudwatch: "monitoring"
        }
    }
}

/// Region and endpoints, resolved once from the job's environment.
public struct AWSEndpoints: Sendable, Equatable {
    public let region: String
    private let overrides: [AWSService: String]
    private let general: String?

    public init(region: String, general: String? = nil, overrides: [AWSService: String] = [:]) {
        self.region = region
        self.general = general
        self.overrides = overrides
    }

    /// `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then the
    /// standard regional endpoint.
    public init(region: String, job: JobContext) {
        var overrides: [AWSService: String] = [:]
        for service in AWSService.allCases {
            if let url = job["AWS_ENDPOINT_URL_\(service.endpointVariableSuffix)"] { overrides[service] = url }
        }
        self.init(region: region, general: job["AWS_ENDPOINT_URL"], overrides: overrides)
    }

    /// A region's shape: two letters, one or more words, a number
    /// (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`), as
    /// AWS names them ("Regions and Zones" in the EC2 user guide).
    public static func isRegion(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, let last = parts.last, (1...2).contains(last.count), last.allSatisfy(\.isASCII),
            last.allSatisfy(\.isNumber),
            parts[0].count == 2
        else { return false }
        return parts.dropLast().allSatisfy { word in !word.isEmpty && word.allSatisfy { $0.isASCII && $0.isLowercase } }
    }

    /// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`: an http or https
    /// URL with a host, or a bad configuration naming the variable.
    public static func checkOverrides(job: JobContext) throws {
        let names = ["AWS_ENDPOINT_URL"] + AWSService.allCases.map { "AWS_ENDPOINT_URL_\($0.endpointVariableSuffix)" }
        for name in names {
            guard let value = job[name] else { continue }
            guard let url = URLComponents(string: value), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
            else {
                throw KilnError.badConfiguration(
                    "\(name): \(Untrusted.quoted(value)) is not an http or https URL with a host"
                        + " (such as https://ec2.eu-west-1.amazonaws.com)"
                )
            }
        }
    }

    public func url(for service: AWSService) -> String {
        if let url = overrides[service] ?? general { return url.hasSuffix("/") ? String(url.dropLast()) : url }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return "https://\(service.hostPrefix).\(region).\(suffix)"
    }
}
