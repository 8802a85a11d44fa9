import Foundation
import KilnArtifacts
import KilnCore

/// A value a template can hold: a string, a number or a boolean, or a list
/// of those (a Terraform list output). Maps cannot be rendered.
public indirect enum TemplateValue: Sendable, Equatable {
    case string(String)
    case number(String)
    case boolean(Bool)
    case list([TemplateValue])

    init(_ value: TerraformValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .number(let text): self = .number(text)
        case .boolean(let flag): self = .boolean(flag)
        case .list(let items): self = .list(items.map(TemplateValue.init))
        }
    }

    var text: String {
        switch self {
        case .string(let text), .number(let text): text
        case .boolean(let value): value ? "true" : "false"
        case .list(let items): items.map(\.text).joined(separator: " ")
        }
    }
}

/// A template: text with `{{ name }}` placeholders. A placeholder never
/// spans lines. There is no raw output: every value is escaped for the
/// place it lands in (`ShellEscaper`, `YAMLEscaper`).
public struct Template: Sendable {
    public enum Piece: Sendable, Equatable {
        case text(String)
        /// `line` and `column` (1-based, in characters) of the placeholder's `{{`.
        case placeholder(name: String, line: Int, column: Int)
    }

    public let pieces: [Piece]
    /// The template's file, for messages.
    public let source: String

    public var variableNames: [String] {
        var seen: [String] = []
        for case .placeholder(let name, _, _) in pieces where !seen.contains(name) { seen.append(name) }
        return seen
    }

    public init(parsing text: String, source: String) throws {
        self.source = source
        var pieces: [Piece] = []
        var line = 1
        var column = 1
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            let before = rest[..<open.lowerBound]
            pieces.append(.text(String(before)))
            line += before.filter { $0 == "\n" }.count
            if let lastNewline = before.lastIndex(of: "\n") {
                column = before.distance(from: lastNewline, to: before.endIndex)
            } else {
                column += before.count
            }
            let afterOpen = rest[open.upperBound...]
            let lineEnd = afterOpen.firstIndex(of: "\n") ?? afterOpen.endIndex
            guard let close = afterOpen[..<lineEnd].range(of: "}}") else {
                throw KilnError.badConfiguration("\(source):\(line): unclosed tag: '{{' without '}}' on the same line")
            }
            let name = afterOpen[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard Self.isName(name) else {
                throw KilnError.badConfiguration(
                    """
                    \(source):\(line): \
                    '{{\(afterOpen[..<close.lowerBound])}}' is not a variable name (letters, digits, '_' and '.')
                    """
                )
            }
            pieces.append(.placeholder(name: name, line: line, column: column))
            column += rest.distance(from: open.lowerBound, to: close.upperBound)
            rest = afterOpen[close.upperBound...]
        }
        if rest.contains("}}") {
            line += rest[..<rest.range(of: "}}")!.lowerBound].filter { $0 == "\n" }.count
            throw KilnError.badConfiguration("\(source):\(line): '}}' without '{{'")
        }
        pieces.append(.text(String(rest)))
        self.pieces = pieces.filter { $0 != .text("") }
    }

    static func isName(_ text: String) -> Bool {
        guard let first = text.first, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }
    }
}

/// Escapes values for one kind of file as the template's text is read, so
/// that each value lands as data in the context it stands in.
protocol ContextEscaper {
    /// Consumes literal template text (updates the lexical state).
    mutating func read(_ text: String)
    /// The escaped form of `value` for the current state, or an error
    /// explaining why a value cannot stand here. `location` is the
    /// placeholder's `file:line:column`; `following` is the rest of the
    /// template's line after the placeholder ("{{" when another follows).
    func escape(_ value: TemplateValue, name: String, location: String, following: String) throws -> String
    /// Notes that a (neutral) rendered value now stands on the line.
    mutating func didRender()
}

extension Template {
    /// Renders with every placeholder escaped by `escaper`; an unknown
    /// variable is exit 78 with its name and line.
    func render(_ values: [String: TemplateValue], escaper: inout some ContextEscaper) throws -> String {
        var out = ""
        for (index, piece) in pieces.enumerated() {
            switch piece {
            case .text(let text):
                escaper.read(text)
                out += text
            case .placeholder(let name, let line, let column):
                guard let value = values[name] else {
                    let known = values.keys.sorted().joined(separator: ", ")
                    throw KilnError.badConfiguration("\(source):\(line): unknown variable '\(name)' (known: \(known))")
                }
                var following = ""
                if index + 1 < pieces.count {
                    switch pieces[index + 1] {
                    case .text(let text): following = String(text.prefix { $0 != "\n" })
                    case .placeholder: following = "{{"
                    }
                }
                let escaped = try escaper.escape(
                    value, name: name, location: "\(source):\(line):\(column)", following: following)
                // The escaped form is neutral: it leaves the lexical state as it was.
                out += escaped
                escaper.didRender()
            }
        }
        return out
    }
}
