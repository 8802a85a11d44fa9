import Foundation
import Yams

/// A value of `kiln.yml`, with the line it was written on, so that every
/// complaint about it can say where to look.
public indirect enum ConfigNode: Sendable, Equatable {
    case scalar(String, line: Int)
    case sequence([ConfigNode], line: Int)
    case mapping([(key: String, value: ConfigNode)], line: Int)

    public var line: Int {
        switch self {
        case .scalar(_, let line), .sequence(_, let line), .mapping(_, let line): line
        }
    }

    public subscript(key: String) -> ConfigNode? {
        guard case .mapping(let entries, _) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    public var kind: String {
        switch self {
        case .scalar: "a scalar"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    public static func == (lhs: ConfigNode, rhs: ConfigNode) -> Bool {
        switch (lhs, rhs) {
        case let (.scalar(a, la), .scalar(b, lb)): a == b && la == lb
        case let (.sequence(a, la), .sequence(b, lb)): a == b && la == lb
        case let (.mapping(a, la), .mapping(b, lb)):
            la == lb && a.elementsEqual(b) { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }
}

/// `kiln.yml`: the repository's own settings, lowest but one in precedence
/// (flag > environment variable > kiln.yml > default).
public struct ConfigFile: Sendable, Equatable {
    /// The file it came from; nil when there was none.
    public let path: String?
    public let root: ConfigNode?
    /// The line each key is written on, by key path (`build.test[0].run`),
    /// so that a complaint about a key names the key's line, not its value's.
    public let keyLines: [String: Int]

    public static let empty = ConfigFile(path: nil, root: nil)

    public init(path: String?, root: ConfigNode?, keyLines: [String: Int] = [:]) {
        self.path = path
        self.root = root
        self.keyLines = keyLines
    }

    /// `--config`, else `KILN_CONFIG`, else `kiln.yml` in the project folder.
    /// A file named by flag or variable must exist; the default may be absent.
    public static func load(flag: String?, job: JobContext) throws -> ConfigFile {
        if let named = flag.flatMap({ $0.isEmpty ? nil : $0 }) ?? job["KILN_CONFIG"] {
            guard FileManager.default.fileExists(atPath: named) else {
                throw KilnError.badConfiguration("\(named): configuration file not found")
            }
            return try load(path: named)
        }
        let directory = job.projectDirectory ?? FileManager.default.currentDirectoryPath
        let path = (directory as NSString).appendingPathComponent("kiln.yml")
        guard FileManager.default.fileExists(atPath: path) else { return .empty }
        return try load(path: path)
    }

    /// Reads `kiln.yml` and refuses any key `ConfigSchema.kilnYML` does not know.
    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.badConfiguration("\(path): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KilnError.badConfiguration("\(path): not UTF-8 text")
        }
        let file = try parse(text, path: path)
        try file.check(against: .kilnYML)
        return file
    }

    /// Parses YAML into `ConfigNode`s, refusing anchors, aliases and merge
    /// keys before anything is expanded, and keys given twice.
    ///
    /// Yams' `Parser.singleRoot()` composes the node tree without copying
    /// an alias: the alias stands for the anchored node itself, and that node
    /// keeps its `anchor` (a weak reference the parser holds, so the parser
    /// is kept alive while the tree is read). Walking the tree in document
    /// order meets an anchored node first where its `&name` is written, and
    /// refuses it there, before the walk descends into it; so a "billion
    /// laughs" file is refused after reading its first anchor, never expanded.
    public static func parse(_ text: String, path: String) throws -> ConfigFile {
        // Before Yams sees the text: an alias as a key would be expanded
        // (hashed whole) inside the parser itself (YAMLKeyAliasScan).
        if let alias = YAMLKeyAliasScan.firstKeyAlias(in: text) {
            throw KilnError.badConfiguration(
                "\(path):\(alias.line): YAML anchors and aliases (*\(alias.name), here as a key) are not supported")
        }
        let parser: Parser
        let node: Node?
        do {
            parser = try Parser(yaml: text)
            node = try parser.singleRoot()
        } catch let error as YamlError {
            throw KilnError.badConfiguration("\(path):\(describe(error, text: text))")
        } catch {
            throw KilnError.badConfiguration("\(path): \(error)")
        }
        guard let node else { return ConfigFile(path: path, root: nil) }
        var keyLines: [String: Int] = [:]
        let root = try withExtendedLifetime(parser) {
            try convert(node, path: path, keyPath: "", keyLines: &keyLines)
        }
        guard case .mapping = root else {
            throw KilnError.badConfiguration(
                "\(path):\(root.line): the top level must be a mapping of settings, found \(root.kind)")
        }
        return ConfigFile(path: path, root: root, keyLines: keyLines)
    }

    /// The node at a dotted key path (`build.test`), if the file has it.
    public func node(_ keyPath: String) -> ConfigNode? {
        var node = root
        for key in keyPath.split(separator: ".") {
            node = node?[String(key)]
        }
        return node
    }

    /// `kiln.yml:12` for messages.
    public func location(_ node: ConfigNode) -> String {
        "\(path ?? "kiln.yml"):\(node.line)"
    }

    private static func convert(
        _ node: Node, path: String, keyPath: String, keyLines: inout [String: Int]
    ) throws -> ConfigNode {
        let line = node.mark?.line ?? 0
        let anchor: Anchor?
        switch node {
        case .scalar(let scalar): anchor = scalar.anchor
        case .sequence(let sequence): anchor = sequence.anchor
        case .mapping(let mapping): anchor = mapping.anchor
        case .alias(let alias): anchor = alias.anchor
        }
        if let anchor {
            throw KilnError.badConfiguration(
                """
                \(path):\(line): \(keyPath.isEmpty ? "top level" : keyPath): YAML anchors and aliases \
                (&\(anchor.rawValue), *\(anchor.rawValue)) are not supported; write the value out
                """
            )
        }
        switch node {
        case .scalar(let scalar):
            return .scalar(scalar.string, line: line)
        case .sequence(let sequence):
            return .sequence(
                try sequence.enumerated().map {
                    try convert($1, path: path, keyPath: "\(keyPath)[\($0)]", keyLines: &keyLines)
                },
                line: line)
        case .mapping(let mapping):
            var entries: [(key: String, value: ConfigNode)] = []
            var lines: [String: Int] = [:]
            for (key, value) in mapping {
                let keyLine = key.mark?.line ?? line
                guard case .scalar(let scalar) = key, scalar.anchor == nil else {
                    throw KilnError.badConfiguration(
                        """
                        \(path):\(keyLine): \
                        \(keyPath.isEmpty ? "top level" : keyPath): a key must be a plain string
                        """
                    )
                }
                let child = keyPath.isEmpty ? scalar.string : "\(keyPath).\(scalar.string)"
                // YAML 1.1's merge key (https://yaml.org/type/merge.html): a plain `<<`.
                if scalar.string == "<<" && scalar.style == .plain {
                    throw KilnError.badConfiguration(
                        "\(path):\(keyLine): \(child): YAML merge keys (<<) are not supported; write the keys out")
                }
                if let first = lines[scalar.string] {
                    throw KilnError.badConfiguration(
                        "\(path):\(keyLine): \(child): given twice, on lines \(first) and \(keyLine)")
                }
                lines[scalar.string] = keyLine
                keyLines[child] = keyLine
                entries.append((scalar.string, try convert(value, path: path, keyPath: child, keyLines: &keyLines)))
            }
            return .mapping(entries, line: line)
        case .alias:
            throw KilnError.badConfiguration("\(path):\(line): \(keyPath): YAML aliases are not supported")
        }
    }

    private static func describe(_ error: YamlError, text: String) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return "\(mark.line): YAML syntax: \(problem) (column \(mark.column))"
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams names the first of the keys; the second is the next key at
            // the same indentation (a block mapping) or on the same line (a flow one).
            let first = context.mark
            let again = duplicates.first.flatMap { repeatedKeyLine($0, after: first, in: text) }
            return "\(first.line): \(duplicates.joined(separator: ", ")): given twice, on lines \(first.line)"
                + (again.map { " and \($0)" } ?? " and later in the same mapping")
        default:
            return " YAML: \(error)"
        }
    }

    /// The line of the second `key:` of the mapping whose first `key` is at `mark`.
    private static func repeatedKeyLine(_ key: String, after mark: Mark, in text: String) -> Int? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let indent = mark.column - 1
        let firstLine = lines[mark.line - 1]
        if firstLine.dropFirst(indent).dropFirst(key.count).contains("\(key):") { return mark.line }
        for number in mark.line..<lines.count {
            let content = lines[number]
            let spaces = content.prefix { $0 == " " }.count
            let rest = content.dropFirst(spaces)
            if rest.isEmpty || rest.hasPrefix("#") { continue }
            if spaces < indent { return nil }
            guard spaces == indent else { continue }
            for written in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(written) {
                if rest.dropFirst(written.count).drop(while: { $0 == " " }).hasPrefix(":") { return number + 1 }
            }
        }
        return nil
    }
}

/// Reading structured sections of kiln.yml with errors that name the file,
/// line and key path (`kiln.yml:14: build.test[1].timeout: ...`).
extension ConfigFile {
    public func fail(_ node: ConfigNode, _ keyPath: String, _ problem: String) -> KilnError {
        KilnError.badConfiguration("\(location(node)): \(keyPath): \(problem)")
    }

    /// `kiln.yml:3: build.comands: unknown key; did you mean 'commands'? expected one of ...`,
    /// at the key's own line: the one message for a key no section knows.
    public func unknownKey(_ key: String, in keyPath: String, value: ConfigNode, known: Set<String>) -> KilnError {
        let child = keyPath.isEmpty ? key : "\(keyPath).\(key)"
        let sorted = known.sorted()
        let hint = ConfigSchema.closest(to: key, among: sorted).map { "did you mean '\($0)'? " } ?? ""
        return KilnError.badConfiguration(
            """
            \(path ?? "kiln.yml"):\(keyLines[child] ?? value.line): \(child): unknown key; \
            \(hint)expected one of \(sorted.joined(separator: ", "))
            """
        )
    }

    public func scalar(_ node: ConfigNode, _ keyPath: String) throws -> String {
        guard case .scalar(let text, _) = node else {
            throw fail(node, keyPath, "expected a string, found \(node.kind)")
        }
        return text
    }

    public func value<Value: SettingValue>(
        _ node: ConfigNode, _ keyPath: String, as _: Value.Type = Value.self
    ) throws -> Value {
        let text = try scalar(node, keyPath)
        guard let value = Value(settingText: text) else {
            throw fail(node, keyPath, "expected \(Value.expected), got '\(text)'")
        }
        return value
    }

    /// A value that must lie in `range` (`health.consecutive` at least 1):
    /// outside it is exit 78 saying the range allowed.
    public func value<Value: SettingValue & Comparable & CustomStringConvertible>(
        _ node: ConfigNode, _ keyPath: String, in range: ClosedRange<Value>
    ) throws -> Value {
        let value: Value = try value(node, keyPath)
        guard range.contains(value) else {
            throw fail(node, keyPath, "must be from \(range.lowerBound) to \(range.upperBound), got '\(value)'")
        }
        return value
    }

    /// A value that must be at least `lower`.
    public func value<Value: SettingValue & Comparable & CustomStringConvertible>(
        _ node: ConfigNode, _ keyPath: String, atLeast lower: Value
    ) throws -> Value {
        let value: Value = try value(node, keyPath)
        guard value >= lower else { throw fail(node, keyPath, "must be at least \(lower), got '\(value)'") }
        return value
    }

    public func list(_ node: ConfigNode, _ keyPath: String) throws -> [ConfigNode] {
        guard case .sequence(let items, _) = node else {
            throw fail(node, keyPath, "expected a list, found \(node.kind)")
        }
        return items
    }

    /// A list, or a single value standing for a list of one.
    public func listOrOne(_ node: ConfigNode, _ keyPath: String) -> [ConfigNode] {
        if case .sequence(let items, _) = node { return items }
        return [node]
    }

    /// A mapping's entries, refusing keys not in `allowed` (a typo is an
    /// error, not a setting silently ignored).
    public func mapping(_ node: ConfigNode, _ keyPath: String, allowed: Set<String>) throws -> [String: ConfigNode] {
        guard case .mapping(let entries, _) = node else {
            throw fail(node, keyPath, "expected a mapping, found \(node.kind)")
        }
        var result: [String: ConfigNode] = [:]
        for (key, value) in entries {
            guard allowed.contains(key) else {
                throw unknownKey(key, in: keyPath, value: value, known: allowed)
            }
            result[key] = value
        }
        return result
    }

    /// A mapping of strings to strings (`env:`).
    public func stringMap(_ node: ConfigNode, _ keyPath: String) throws -> [String: String] {
        guard case .mapping(let entries, _) = node else {
            throw fail(node, keyPath, "expected a mapping, found \(node.kind)")
        }
        var result: [String: String] = [:]
        for (key, value) in entries { result[key] = try scalar(value, "\(keyPath).\(key)") }
        return result
    }
}
