/// A `<name>.env` file for `artifacts:reports:dotenv`, checked against
/// GitLab's documented rules before it is written: `KEY=value` lines only,
/// keys of `[A-Za-z0-9_]`, no blank lines, comments, quotes or multiline
/// values, under 5 KB and at most 20 variables (GitLab drops a file that
/// breaks them, silently for the job that wrote it).
public struct Dotenv: Sendable, Equatable {
    public static let maximumVariables = 20
    public static let maximumBytes = 5 * 1024

    public private(set) var entries: [(key: String, value: String)] = []

    public init(_ entries: KeyValuePairs<String, String> = [:]) {
        for (key, value) in entries { self.entries.append((key, value)) }
    }

    public mutating func set(_ key: String, _ value: String) {
        if let index = entries.firstIndex(where: { $0.key == key }) {
            entries[index].value = value
        } else {
            entries.append((key, value))
        }
    }

    public static func == (lhs: Dotenv, rhs: Dotenv) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    /// The file's text, or an error naming the rule an entry breaks (78: the
    /// value came from the job, a flag or an artifact, and cannot be passed
    /// on as GitLab passes variables).
    public func rendered() throws -> String {
        guard entries.count <= Self.maximumVariables else {
            throw KilnError.badConfiguration(
                "dotenv: \(entries.count) variables, GitLab accepts at most \(Self.maximumVariables)")
        }
        var text = ""
        for (key, value) in entries {
            if let problem = Self.problem(key: key, value: value) {
                throw KilnError.badConfiguration(
                    "dotenv: \(key)=\(Untrusted.quoted(value)): \(problem); GitLab would drop the file")
            }
            text += "\(key)=\(value)\n"
        }
        guard text.utf8.count < Self.maximumBytes else {
            throw KilnError.badConfiguration(
                "dotenv: \(text.utf8.count) bytes, GitLab accepts under \(Self.maximumBytes)")
        }
        return text
    }

    static func problem(key: String, value: String) -> String? {
        let keyCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
        if key.isEmpty || !key.allSatisfy(keyCharacters.contains) {
            return "a key may hold only letters, digits and '_'"
        }
        if value.contains(where: { $0 == "\n" || $0 == "\r" }) { return "the value spans lines" }
        if value.contains(where: { $0 == "\"" || $0 == "'" }) { return "the value holds a quote" }
        if value.hasPrefix(" ") || value.hasSuffix(" ") { return "the value starts or ends with a space" }
        return nil
    }
}
