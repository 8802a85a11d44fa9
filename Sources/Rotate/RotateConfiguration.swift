import Foundation
import KilnArtifacts
import KilnCore

/// A batch size: a number of instances or a share of the group (`2`, `33%`).
public enum BatchSize: Sendable, Equatable, SettingValue, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    public static var expected: String { "a number of instances or a percentage such as 25%" }

    public init?(settingText: String) {
        let text = settingText.trimmingCharacters(in: .whitespaces)
        if text.hasSuffix("%"), let value = Int(text.dropLast()), (1...100).contains(value) {
            self = .percent(value)
        } else if let value = Int(text), value >= 1 {
            self = .count(value)
        } else {
            return nil
        }
    }

    func instances(of total: Int) -> Int {
        switch self {
        case .count(let count): max(1, count)
        case .percent(let percent): max(1, Int((Double(total) * Double(percent) / 100).rounded(.up)))
        }
    }

    public var description: String {
        switch self {
        case .count(let count): "\(count)"
        case .percent(let percent): "\(percent)%"
        }
    }
}

/// The health gate's settings (`environments.<env>.rotate.health`).
public struct HealthSettings: Sendable, Equatable {
    /// Wait this long after an instance is first seen before judging it.
    public var grace: TimeInterval = 0
    /// Passes in a row that make an instance healthy.
    public var consecutive: Int = 3
    /// Failed checks in a row that make a passed instance unhealthy, as a
    /// target group's UnhealthyThresholdCount does (default 2 for HTTP/HTTPS
    /// target groups, Elastic Load Balancing user guide, "Health checks for
    /// your target groups"): one dropped probe of a busy instance is no
    /// reason to roll a release back. 1 fails it at its first failed check.
    public var unhealthyThreshold: Int = 2
    /// Seconds between polls of the group (AWS calls).
    public var poll: TimeInterval = 5
    /// Seconds between HTTP probes of new instances between two polls (no
    /// AWS call); at most `poll`.
    public var probeInterval: TimeInterval = 1
    /// How long a batch may take to become healthy.
    public var timeout: TimeInterval = 600
    /// `http://{private_ip}:8080/health`: probed when given; 2xx passes.
    public var url: String?
    /// A substring the probe's body must hold.
    public var expectBody: String?
    /// Per-probe time limit.
    public var probeTimeout: TimeInterval = 2
    /// CloudWatch alarms that fail the batch when any is in ALARM (`AlarmWatch`).
    public var alarms: [String] = []
}

/// `environments.<env>.rotate` of kiln.yml, with flags over it.
public struct RotateConfiguration: Sendable, Equatable {
    public var environment: String
    public var autoScalingGroup: String
    public var strategy: RotationStrategy = .rolling
    public var batch: BatchSize = .count(1)
    /// Instances below the starting desired capacity the user allows while rolling.
    public var maxUnavailable: Int = 0
    public var canarySoak: TimeInterval = 60
    public var health = HealthSettings()
    /// Processes to suspend besides AZRebalance (`AlarmNotification`, `ScheduledActions`).
    public var suspend: [String] = []
    /// Whether Kiln may raise the group's max size for the surge.
    public var raiseMaxSize = true
    /// A heartbeat older than this marks a journal as left by a dead run.
    public var staleAfter: TimeInterval = 300
    /// `environments.<env>.url`: what a person opens to see the environment
    /// (the load balancer's address); handed to GitLab's environment page as
    /// `KILN_ENVIRONMENT_URL` in rotation-<env>.env.
    public var environmentURL: String?
    /// Pauses with the gate still watching, after the batches that reach
    /// these shares of the instances to replace (`checkpoints`, `checkpoint_soak`).
    public var checkpoints: Checkpoints?

    static let keys = ConfigSchema.rotate.keys

    /// The shortest a journal may go without a heartbeat before it counts as
    /// left by a dead run: three heartbeats, so a live run is never taken over.
    static let shortestStaleAfter = Seconds(3 * Rotation.heartbeatEvery)
    /// Polls and probes closer than this would only load AWS and the instances.
    static let shortestPoll = Seconds(0.05)

    /// `environments.<env>.url`: a URL, or `{terraform: <output>}`; an
    /// absolute http or https URL (GitLab's `environment:url` takes no other),
    /// else 78 naming the key.
    /// A value written as such, or as `{terraform: <output>}` naming one of
    /// Terraform's outputs (the group's name, the environment's URL).
    static func literalOrTerraform(
        _ node: ConfigNode, _ keyPath: String, file: ConfigFile, terraform: [String: String], what: String
    ) throws -> String {
        if case .scalar(let text, _) = node { return text }
        let reference = try file.mapping(node, keyPath, allowed: ["terraform"])
        guard let outputNode = reference["terraform"] else {
            throw file.fail(node, keyPath, "give \(what), or {terraform: <output>}")
        }
        let output = try file.scalar(outputNode, "\(keyPath).terraform")
        guard let value = terraform[output] else {
            throw file.fail(node, keyPath, "no Terraform output '\(output)' (give --terraform-outputs)")
        }
        return value
    }

    static func environmentURL(_ file: ConfigFile, environment: String, terraform: [String: String]) throws -> String? {
        let keyPath = "environments.\(environment).url"
        guard let node = file.node(keyPath) else { return nil }
        let url = try literalOrTerraform(node, keyPath, file: file, terraform: terraform, what: "the URL")
        guard let parsed = URLComponents(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
            parsed.host?.isEmpty == false, !url.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" })
        else {
            throw file.fail(node, keyPath, "\(Untrusted.quoted(url)) is not an absolute http or https URL")
        }
        return url
    }

    public static func load(
        _ file: ConfigFile, environment: String, terraform: [String: String]
    ) throws -> RotateConfiguration {
        let keyPath = "environments.\(environment).rotate"
        guard let section = file.node(keyPath) else {
            throw KilnError.badConfiguration(
                "\(file.path ?? "kiln.yml"): no '\(keyPath)' section: name at least auto_scaling_group")
        }
        let fields = try file.mapping(section, keyPath, allowed: keys)
        guard let groupNode = fields["auto_scaling_group"] else {
            throw file.fail(
                section, "\(keyPath).auto_scaling_group", "missing: the group's name, or {terraform: <output>}")
        }
        let group = try literalOrTerraform(
            groupNode, "\(keyPath).auto_scaling_group", file: file, terraform: terraform, what: "the group's name")
        var configuration = RotateConfiguration(environment: environment, autoScalingGroup: group)
        configuration.environmentURL = try environmentURL(file, environment: environment, terraform: terraform)
        func seconds(_ key: String, atLeast lower: Seconds = Seconds(0)) throws -> TimeInterval? {
            try fields[key].map { try file.value($0, "\(keyPath).\(key)", atLeast: lower).value }
        }
        if let node = fields["strategy"] { configuration.strategy = try file.value(node, "\(keyPath).strategy") }
        if let node = fields["batch"] { configuration.batch = try file.value(node, "\(keyPath).batch") }
        if let node = fields["max_unavailable"] {
            configuration.maxUnavailable = try file.value(node, "\(keyPath).max_unavailable", atLeast: 0)
        }
        if let soak = try seconds("canary_soak") { configuration.canarySoak = soak }
        if let stale = try seconds("stale_after", atLeast: shortestStaleAfter) { configuration.staleAfter = stale }
        if let node = fields["raise_max_size"] {
            configuration.raiseMaxSize = try file.value(node, "\(keyPath).raise_max_size")
        }
        configuration.checkpoints = try Checkpoints.load(
            fields["checkpoints"], soak: fields["checkpoint_soak"], keyPath: keyPath, file: file)
        if let node = fields["suspend"] {
            configuration.suspend = try file.listOrOne(node, "\(keyPath).suspend").enumerated().map {
                try file.scalar($1, "\(keyPath).suspend[\($0)]")
            }
            let allowed: Set<String> = [
                "AlarmNotification", "ScheduledActions", "AddToLoadBalancer", "InstanceRefresh",
            ]
            for name in configuration.suspend where !allowed.contains(name) {
                throw file.fail(
                    node, "\(keyPath).suspend",
                    """
                    '\(name)' cannot be suspended for a rotation (allowed: \
                    \(allowed.sorted().joined(separator: ", ")); Launch, Terminate and HealthCheck are what it needs)
                    """
                )
            }
        }
        if let node = fields["health"] {
            let healthPath = "\(keyPath).health"
            let health = try file.mapping(node, healthPath, allowed: ConfigSchema.health.keys)
            func healthSeconds(_ key: String, atLeast lower: Seconds) throws -> TimeInterval? {
                try health[key].map { try file.value($0, "\(healthPath).\(key)", atLeast: lower).value }
            }
            if let value = try healthSeconds("grace", atLeast: Seconds(0)) { configuration.health.grace = value }
            if let value = try healthSeconds("poll", atLeast: shortestPoll) { configuration.health.poll = value }
            if let value = try healthSeconds("probe_interval", atLeast: shortestPoll) {
                configuration.health.probeInterval = value
            }
            if let value = try healthSeconds("timeout", atLeast: Seconds(1)) { configuration.health.timeout = value }
            if let value = try healthSeconds("probe_timeout", atLeast: shortestPoll) {
                configuration.health.probeTimeout = value
            }
            if let value = health["consecutive"] {
                configuration.health.consecutive = try file.value(value, "\(healthPath).consecutive", atLeast: 1)
            }
            if let value = health["unhealthy_threshold"] {
                configuration.health.unhealthyThreshold = try file.value(
                    value, "\(healthPath).unhealthy_threshold", atLeast: 1)
            }
            if let value = health["url"] {
                let url = try file.scalar(value, "\(healthPath).url")
                let known = ["{private_ip}", "{public_ip}", "{private_dns}", "{instance_id}"]
                var stripped = url
                for placeholder in known { stripped = stripped.replacingOccurrences(of: placeholder, with: "") }
                if stripped.contains("{") {
                    throw file.fail(
                        value, "\(healthPath).url", "only \(known.joined(separator: ", ")) may stand in braces")
                }
                configuration.health.url = url
            }
            if let value = health["alarms"] {
                configuration.health.alarms = try AlarmWatch.names(value, "\(healthPath).alarms", file: file)
            }
            if let value = health["expect_body"] {
                configuration.health.expectBody = try file.scalar(value, "\(healthPath).expect_body")
            }
        }
        return configuration
    }
}
