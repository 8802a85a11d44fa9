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

    public static let empty = ConfigFile(path: nil, root: nil)

    public init(path: String?, root: ConfigNode?) {
        self.path = path
        self.root = root
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

    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.badConfiguration("\(path): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KilnError.badConfiguration("\(path): not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> ConfigFile {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw KilnError.badConfiguration("\(path):\(describe(error))")
        } catch {
            throw KilnError.badConfiguration("\(path): \(error)")
        }
        guard let node else { return ConfigFile(path: path, root: nil) }
        let root = try convert(node, path: path, keyPath: "")
        guard case .mapping = root else {
            throw KilnError.badConfiguration(
                "\(path):\(root.line): the top level must be a mapping of settings, found \(root.kind)")
        }
        return ConfigFile(path: path, root: root)
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

    private static func convert(_ node: Node, path: String, keyPath: String) throws -> ConfigNode {
        let line = node.mark?.line ?? 0
        switch node {
        case .scalar(let scalar):
            return .scalar(scalar.string, line: line)
        case .sequence(let sequence):
            return .sequence(
                try sequence.enumerated().map { try convert($1, path: path, keyPath: "\(keyPath)[\($0)]") },
                line: line)
        case .mapping(let mapping):
            var entries: [(key: String, value: ConfigNode)] = []
            for (key, value) in mapping {
                guard case .scalar(let scalar) = key else {
                    throw KilnError.badConfiguration(
                        """
                        \(path):\(key.mark?.line ?? line): \
                        \(keyPath.isEmpty ? "top level" : keyPath): a key must be a plain string
                        """
                    )
                }
                let child = keyPath.isEmpty ? scalar.string : "\(keyPath).\(scalar.string)"
                if entries.contains(where: { $0.key == scalar.string }) {
                    throw KilnError.badConfiguration("\(path):\(key.mark?.line ?? line): \(child): given twice")
                }
                entries.append((scalar.string, try convert(value, path: path, keyPath: child)))
            }
            return .mapping(entries, line: line)
        case .alias:
            throw KilnError.badConfiguration("\(path):\(line): \(keyPath): YAML aliases are not supported in kiln.yml")
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return "\(mark.line): YAML syntax: \(problem) (column \(mark.column))"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "\(context.mark.line): \(duplicates.joined(separator: ", ")): given twice"
        default:
            return " YAML: \(error)"
        }
    }
}

/// Reading structured sections of kiln.yml with errors that name the file,
/// line and key path (`kiln.yml:14: build.test[1].timeout: ...`).
extension ConfigFile {
    public func fail(_ node: ConfigNode, _ keyPath: String, _ problem: String) -> KilnError {
        KilnError.badConfiguration("\(location(node)): \(keyPath): \(problem)")
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
                throw fail(
                    value, keyPath.isEmpty ? key : "\(keyPath).\(key)",
                    "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
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
