import ArgumentParser
import Foundation
import KilnAWS
import KilnCLI
import KilnCore
import KilnHTTP

/// The option of the stages that talk to AWS.
public struct AWSOptions: ParsableArguments {
    @Flag(
        name: .customLong("check-aws"),
        help: ArgumentHelp(
            "Resolve AWS credentials and region, call STS GetCallerIdentity, print who Kiln acts as, and exit."))
    public var checkAWS = false

    public init() {}
}

/// A stage that talks to AWS (bake, rotate): the AWS environment (region,
/// endpoints, retry policy, one credential chain) is resolved once from the
/// job, and `--check-aws` tries it without doing the stage's work.
public protocol AWSStageCommand: StageCommand {
    var aws: AWSOptions { get }
    func run(in context: StageContext, aws: AWSEnvironment) throws
}

extension AWSStageCommand {
    public func run(in context: StageContext, http: HTTPClient) throws {
        let environment = try AWSEnvironment(
            job: context.job, http: http, secrets: context.log.secrets, log: context.log, clock: context.clock)
        if aws.checkAWS {
            try CheckAWS.report(environment)
            return
        }
        try run(in: context, aws: environment)
    }
}

/// `--check-aws`: the way to try Kiln's AWS access by hand. Prints the
/// account, the ARN and where the credentials came from on stdout.
enum CheckAWS {
    static func report(_ aws: AWSEnvironment) throws {
        let resolved = try aws.credentials.resolved()
        let identity = try aws.client().getCallerIdentity()
        print(
            """
            account: \(identity.account)
            arn: \(identity.arn)
            credentials: \(resolved.source)
            region: \(aws.region)
            sts endpoint: \(aws.endpoints.url(for: .sts))
            """)
    }
}
