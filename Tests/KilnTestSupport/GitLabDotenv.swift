import Foundation

/// GitLab's rules for an `artifacts:reports:dotenv` file, written from its
/// documentation and independent of Kiln's own Dotenv writer, so that a test
/// can check what a stage really wrote: `KEY=value` lines only; keys of
/// letters, digits and `_`; no blank lines, comments, quotes or multiline
/// values; under 5 KB; at most 20 variables (GitLab's default limit).
public enum GitLabDotenv {
    public static func violations(_ text: String) -> [String] {
        var problems: [String] = []
        if text.utf8.count >= 5 * 1024 { problems.append("\(text.utf8.count) bytes: GitLab takes under 5 KB") }
        guard text.hasSuffix("\n") || text.isEmpty else { return problems + ["the last line has no newline"] }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        if lines.count > 20 { problems.append("\(lines.count) variables: GitLab takes at most 20") }
        let keyCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
        for (number, line) in lines.enumerated() {
            let at = "line \(number + 1)"
            if line.isEmpty { problems.append("\(at): blank"); continue }
            if line.hasPrefix("#") { problems.append("\(at): a comment"); continue }
            guard let equals = line.firstIndex(of: "=") else { problems.append("\(at): no '='"); continue }
            let key = line[..<equals]
            let value = line[line.index(after: equals)...]
            if key.isEmpty || !key.allSatisfy(keyCharacters.contains) { problems.append("\(at): key '\(key)'") }
            if value.contains("\"") || value.contains("'") { problems.append("\(at): quotes in the value") }
            if value.contains("\r") { problems.append("\(at): a carriage return") }
        }
        return problems
    }
}
