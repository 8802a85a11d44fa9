import Foundation
import KilnCore

/// YAML scalars for a `#cloud-config`. A placeholder must be a whole value
/// (after `key: `, after `- `, or an item of a flow list `[a, {{ x }}]`);
/// a string becomes a double-quoted YAML scalar with every special
/// character escaped, a number or boolean stays bare, a list becomes a flow
/// sequence. Inside a quoted scalar, a block scalar (`|`, `>`), a comment,
/// or beside other text, no escaping keeps every value data: refused.
struct YAMLEscaper: ContextEscaper {
    /// The line read so far (placeholders stand as `X`).
    private var line = ""
    /// Inside a block scalar whose parent line has this indentation.
    private var blockParentIndent: Int?
    /// The last completed line opened a block scalar at this indentation.
    private var openedBlock: Int?

    mutating func read(_ text: String) {
        for character in text {
            if character == "\n" {
                finishLine()
            } else {
                line.append(character)
            }
        }
    }

    private mutating func finishLine() {
        let indent = line.prefix { $0 == " " }.count
        let blank = line.trimmingCharacters(in: .whitespaces).isEmpty
        if let parent = blockParentIndent, !blank, indent <= parent {
            blockParentIndent = nil
        }
        if blockParentIndent == nil, let opened = Self.blockIndicator(line) {
            blockParentIndent = opened
        }
        line = ""
    }

    /// The indentation that a block scalar opened by this line is nested
    /// under, if the line ends in `|` or `>` (with its indicators).
    static func blockIndicator(_ line: String) -> Int? {
        var content = line
        if let comment = content.range(of: " #") { content = String(content[..<comment.lowerBound]) }
        content = content.trimmingCharacters(in: .whitespaces)
        guard let last = content.split(separator: " ").last,
            let first = last.first, first == "|" || first == ">",
            last.dropFirst().allSatisfy({ "+-123456789".contains($0) })
        else { return nil }
        return line.prefix { $0 == " " }.count
    }

    mutating func didRender() { line.append("X") }

    func escape(
        _ value: TemplateValue, name: String, location: String, following: String
    ) throws -> String {
        func refuse(_ why: String) -> KilnError {
            KilnError.badConfiguration("\(location): {{ \(name) }} \(why)")
        }
        let indent = line.prefix { $0 == " " }.count
        if let parent = blockParentIndent, indent > parent || line.trimmingCharacters(in: .whitespaces).isEmpty {
            throw refuse(
                """
                stands in a block scalar (| or >), where YAML escaping cannot keep it data; \
                make it a whole value (content: {{ \(name) }}) or use a shell part
                """
            )
        }
        let prefix = line
        if Self.insideQuotes(prefix) {
            throw refuse("stands inside a quoted string; write it unquoted as a whole value, Kiln quotes it")
        }
        if prefix.contains(" #") || prefix.hasPrefix("#") {
            throw refuse("stands in a comment")
        }
        let before = prefix.trimmingCharacters(in: .whitespaces)
        let flow = before.hasSuffix("[") || before.hasSuffix(",") || before.hasSuffix("{")
        let afterKey = before.hasSuffix(":") && prefix.hasSuffix(" ")
        let afterDash = (before == "-" || before.hasSuffix(" -")) && prefix.hasSuffix(" ")
        guard flow || afterKey || afterDash else {
            throw refuse(
                """
                must be a whole value: after 'key: ', after '- ', or an item of a flow list, with nothing else around it
                """
            )
        }
        let after = following.drop { $0 == " " }
        guard
            after.isEmpty || after.hasPrefix("#") && following.hasPrefix(" ")
                || (flow || Self.openFlow(prefix))
                    && (after.hasPrefix(",") || after.hasPrefix("]") || after.hasPrefix("}"))
        else {
            throw refuse("must be a whole value, but '\(following.prefix(20))' follows it on the line")
        }
        return Self.scalar(value)
    }

    /// Whether a flow collection is open on the line (a value in `[...]`).
    static func openFlow(_ prefix: String) -> Bool {
        prefix.filter { $0 == "[" || $0 == "{" }.count > prefix.filter { $0 == "]" || $0 == "}" }.count
    }

    static func insideQuotes(_ prefix: String) -> Bool {
        var single = false, double = false, escaped = false
        for character in prefix {
            if escaped { escaped = false; continue }
            if double && character == "\\" { escaped = true; continue }
            if character == "\"" && !single { double.toggle() }
            if character == "'" && !double { single.toggle() }
        }
        return single || double
    }

    static func scalar(_ value: TemplateValue) -> String {
        switch value {
        case .string(let text): return doubleQuoted(text)
        case .number(let text): return isNumber(text) ? text : doubleQuoted(text)
        case .boolean(let flag): return flag ? "true" : "false"
        case .list(let items): return "[" + items.map(scalar).joined(separator: ", ") + "]"
        }
    }

    static func isNumber(_ text: String) -> Bool {
        Double(text) != nil && text.allSatisfy { "0123456789.-+eE".contains($0) }
    }

    /// A YAML double-quoted scalar (YAML 1.2, section 7.3.1).
    static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}": out += "\\0"
            case "\u{85}": out += "\\N"
            case "\u{2028}": out += "\\L"
            case "\u{2029}": out += "\\P"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                    || scalar.value == 0xFEFF
                {
                    out +=
                        scalar.value <= 0xFF
                        ? "\\x" + String(format: "%02X", scalar.value) : "\\u" + String(format: "%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
