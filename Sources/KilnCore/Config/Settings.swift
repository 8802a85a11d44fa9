import Foundation

/// A value that can be given as a flag, an environment variable or in
/// `kiln.yml`, parsed the same way from each.
public protocol SettingValue: Sendable {
    /// What a person should write, for messages ("a number").
    static var expected: String { get }
    init?(settingText: String)
}

extension String: SettingValue {
    public static var expected: String { "a string" }
    public init?(settingText: String) { self = settingText }
}

extension Int: SettingValue {
    public static var expected: String { "a whole number" }
    public init?(settingText: String) { self.init(settingText.trimmingCharacters(in: .whitespaces)) }
}

extension Double: SettingValue {
    public static var expected: String { "a number" }
    public init?(settingText: String) { self.init(settingText.trimmingCharacters(in: .whitespaces)) }
}

extension Bool: SettingValue {
    public static var expected: String { "true or false" }
    public init?(settingText: String) {
        switch settingText.lowercased() {
        case "true", "1", "yes": self = true
        case "false", "0", "no": self = false
        default: return nil
        }
    }
}

/// A length of time, parsed once, the way GitLab writes a job's `timeout:`
/// (https://docs.gitlab.com/ci/yaml/#timeout: "3h 30m", "3600 seconds",
/// parsed there by ChronicDuration). Kiln takes the compact subset: a number
/// of seconds (`90`), or amounts with the units `h`, `m` and `s`, each at
/// most once and in that order (`90s`, `10m`, `1h30m`, `1h 30m`, `0.5s`).
/// Amounts are decimal digits with an optional fraction: no sign, exponent,
/// hexadecimal, `inf` or `nan`, so every value is finite and non-negative.
/// Words (`10 minutes`) are not taken.
///
/// The ceiling is 30 days: GitLab refuses a project's job timeout of a month
/// or more (https://docs.gitlab.com/ci/pipelines/settings/#set-a-limit-for-how-long-jobs-can-run),
/// so no Kiln stage inside a job can wait longer; and every duration then
/// converts to whole seconds or milliseconds without overflow.
public struct Seconds: SettingValue, Equatable, Comparable, Codable, CustomStringConvertible {
    public let value: Double

    /// 30 days, in seconds.
    public static let ceiling: Double = 30 * 24 * 3600

    /// A duration Kiln itself chooses (a default); clamped into 0...ceiling.
    public init(_ value: Double) {
        self.value = value.isFinite ? min(max(0, value), Self.ceiling) : Self.ceiling
    }

    public static var expected: String { "a duration such as 90, 90s, 10m or 1h30m (at most 720h)" }
    public static func < (a: Seconds, b: Seconds) -> Bool { a.value < b.value }

    public init?(settingText: String) {
        var rest = Substring(settingText.trimmingCharacters(in: .whitespaces).lowercased())
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        var units: [Character] = ["h", "m", "s"]
        var first = true
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " }
            let whole = rest.prefix { $0.isASCII && $0.isNumber }
            guard !whole.isEmpty else { return nil }
            rest = rest.dropFirst(whole.count)
            var digits = String(whole)
            if rest.first == "." {
                let fraction = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
                guard !fraction.isEmpty else { return nil }
                digits += "." + fraction
                rest = rest.dropFirst(1 + fraction.count)
            }
            guard let amount = Double(digits) else { return nil }
            if first && rest.isEmpty {
                total = amount
                break
            }
            first = false
            guard let unit = rest.first, let position = units.firstIndex(of: unit) else { return nil }
            rest = rest.dropFirst()
            total += amount * [3600, 60, 1][3 - units.count + position]
            units.removeFirst(position + 1)
        }
        guard total.isFinite, total <= Self.ceiling else { return nil }
        self.value = total
    }

    public init(from decoder: Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(Double.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    /// As GitLab writes it: `90s`, `10m`, `1h30m`, `0.2s`.
    public var description: String {
        let whole = Int(value)
        guard Double(whole) == value, whole >= 60 else {
            return "\(value == value.rounded() ? String(Int(value)) : String(value))s"
        }
        let hours = whole / 3600
        let minutes = whole % 3600 / 60
        let seconds = whole % 60
        return (hours > 0 ? "\(hours)h" : "") + (minutes > 0 ? "\(minutes)m" : "") + (seconds > 0 ? "\(seconds)s" : "")
    }
}

/// Where a setting's value came from, for logs and artifacts.
public enum SettingSource: Sendable, Equatable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(path: String, line: Int)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let name): "flag --\(name)"
        case .environment(let name): "variable \(name)"
        case .file(let path, let line): "\(path):\(line)"
        case .defaultValue: "default"
        }
    }
}

public struct Resolved<Value: Sendable>: Sendable {
    public let value: Value
    public let source: SettingSource
}

/// The one place that resolves a setting: flag, else environment variable,
/// else `kiln.yml`, else default. Bad values are exit 78 naming the flag,
/// the variable, or the file, key and line.
public struct Settings: Sendable {
    public let job: JobContext
    public let file: ConfigFile

    public init(job: JobContext, file: ConfigFile) {
        self.job = job
        self.file = file
    }

    /// A flag given as text is parsed here (a bad one is a usage error,
    /// exit 64); one the command line already parsed as the same
    /// `SettingValue` goes to the overload below.
    public func resolve<Value: SettingValue>(
        _ key: String,
        flag: (name: String, value: String?)? = nil,
        environment variable: String? = nil,
        default defaultValue: Value? = nil
    ) throws -> Resolved<Value>? {
        if let flag, let text = flag.value {
            guard let value = Value(settingText: text) else {
                throw KilnError.usage("--\(flag.name): expected \(Value.expected), got '\(text)'")
            }
            return Resolved(value: value, source: .flag(flag.name))
        }
        return try resolve(key, parsedFlag: nil, environment: variable, default: defaultValue)
    }

    /// As `resolve`, with the flag's value already parsed by the command line.
    public func resolve<Value: SettingValue>(
        _ key: String,
        parsedFlag flag: (name: String, value: Value?)?,
        environment variable: String? = nil,
        default defaultValue: Value? = nil
    ) throws -> Resolved<Value>? {
        if let flag, let value = flag.value {
            return Resolved(value: value, source: .flag(flag.name))
        }
        if let variable, let text = job[variable] {
            guard let value = Value(settingText: text) else {
                throw KilnError.badConfiguration("\(variable): expected \(Value.expected), got '\(text)'")
            }
            return Resolved(value: value, source: .environment(variable))
        }
        if let node = file.node(key) {
            guard case .scalar(let text, let line) = node else {
                throw KilnError.badConfiguration(
                    "\(file.location(node)): \(key): expected \(Value.expected), found \(node.kind)")
            }
            guard let value = Value(settingText: text) else {
                throw KilnError.badConfiguration(
                    "\(file.location(node)): \(key): expected \(Value.expected), got '\(text)'")
            }
            return Resolved(value: value, source: .file(path: file.path ?? "kiln.yml", line: line))
        }
        return defaultValue.map { Resolved(value: $0, source: .defaultValue) }
    }

    /// As `resolve`, for a setting that must end up with a value.
    public func require<Value: SettingValue>(
        _ key: String,
        flag: (name: String, value: String?)? = nil,
        environment variable: String? = nil,
        default defaultValue: Value? = nil
    ) throws -> Resolved<Value> {
        if let resolved: Resolved<Value> = try resolve(key, flag: flag, environment: variable, default: defaultValue) {
            return resolved
        }
        throw notSet(key, flag: flag?.name, environment: variable)
    }

    /// As `require`, with the flag's value already parsed by the command line.
    public func require<Value: SettingValue>(
        _ key: String,
        parsedFlag flag: (name: String, value: Value?)?,
        environment variable: String? = nil,
        default defaultValue: Value? = nil
    ) throws -> Resolved<Value> {
        if let resolved: Resolved<Value> = try resolve(
            key, parsedFlag: flag, environment: variable, default: defaultValue)
        {
            return resolved
        }
        throw notSet(key, flag: flag?.name, environment: variable)
    }

    private func notSet(_ key: String, flag: String?, environment variable: String?) -> KilnError {
        var ways = [String]()
        if let flag { ways.append("--\(flag)") }
        if let variable { ways.append(variable) }
        ways.append("'\(key)' in kiln.yml")
        return KilnError.badConfiguration("\(key) is not set; give it as \(ways.joined(separator: ", or "))")
    }

    /// The environment a deploy stage works on: `--environment`, else the
    /// job's `environment: name` (`CI_ENVIRONMENT_NAME`).
    public func environmentName(flag: String?) throws -> String {
        guard let name = flag ?? job.environmentName else {
            throw KilnError.badConfiguration(
                "no environment: give --environment, or run in a job with environment: name (CI_ENVIRONMENT_NAME)")
        }
        return name
    }

    /// The application's name, one rule for every stage: `KILN_APPLICATION`,
    /// else `application` in kiln.yml, else the project's name (`CI_PROJECT_NAME`).
    public func application() throws -> Resolved<String>? {
        try resolve("application", environment: "KILN_APPLICATION", default: job["CI_PROJECT_NAME"])
    }
}
