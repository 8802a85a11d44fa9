import Foundation

/// AWS's shared `credentials` and `config` files: INI sections of
/// `key = value`. In `config`, sections other than `default` are written
/// `[profile NAME]`; in `credentials`, plain `[NAME]`.
struct SharedConfigFiles: Sendable {
    var credentials: [String: [String: String]] = [:]
    var config: [String: [String: String]] = [:]
    let credentialsPath: String
    let configPath: String

    init(credentialsPath: String, configPath: String) {
        self.credentialsPath = credentialsPath
        self.configPath = configPath
        credentials = Self.parse(path: credentialsPath, profilePrefix: false)
        config = Self.parse(path: configPath, profilePrefix: true)
    }

    /// The profile's settings: `config` first, then `credentials` over it
    /// (the CLI's order for keys present in both).
    func profile(_ name: String) -> [String: String]? {
        let fromConfig = config[name]
        let fromCredentials = credentials[name]
        if fromConfig == nil && fromCredentials == nil { return nil }
        return (fromConfig ?? [:]).merging(fromCredentials ?? [:]) { $1 }
    }

    static func parse(path: String, profilePrefix: Bool) -> [String: [String: String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if profilePrefix && name.hasPrefix("profile ") {
                    name = String(name.dropFirst("profile ".count)).trimmingCharacters(in: .whitespaces)
                }
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current]?[key] = value
        }
        return sections
    }
}
