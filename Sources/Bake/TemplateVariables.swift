import Foundation
import KilnCore

/// The variables a Packer template declares, read from its files without
/// Packer: HCL2's top-level `variable "<name>" { ... }` blocks and the
/// attributes of top-level `variables { <name> = ... }` blocks (Packer's HCL2
/// "Input Variables"); the `variable` object of a `.pkr.json` file; the
/// `variables` object of a legacy JSON template. Packer itself only warns
/// about a variable it was given and the template does not declare, and from
/// 1.8.5 says nothing (packer issue 12104), so Kiln checks `bake.variables`
/// against these before it bakes.
public enum TemplateVariables {
    /// Every variable the template's files declare.
    public static func declared(in template: PackerTemplate) throws -> Set<String> {
        var names: Set<String> = []
        for file in template.files where !file.hasSuffix(".pkrvars.hcl") && !file.hasSuffix(".pkrvars.json") {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            if file.hasSuffix(".json") {
                names.formUnion(try declared(inJSON: data, file: file))
            } else {
                names.formUnion(try declared(inHCL: String(decoding: data, as: UTF8.self), file: file))
            }
        }
        return names
    }

    public static func declared(inJSON data: Data, file: String = "template") throws -> Set<String> {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw KilnError.badConfiguration("\(file): not a JSON object, so not a Packer template")
        }
        // `variable` in HCL2's JSON form (.pkr.json), `variables` in a legacy JSON template.
        let declared = (object["variable"] as? [String: Any]) ?? (object["variables"] as? [String: Any]) ?? [:]
        return Set(declared.keys)
    }

    /// The names declared at the top level of one HCL2 file. Comments (`#`,
    /// `//`, `/* */`), quoted strings and heredocs (`<<EOF`, `<<-EOF`) are
    /// skipped, so that nothing inside them counts (HCL native syntax spec).
    public static func declared(inHCL text: String, file: String = "template") throws -> Set<String> {
        var names: Set<String> = []
        var depth = 0
        // The top-level words since the last block: `variable "name"` or `variables`.
        var words: [String] = []
        var inVariables = false
        var lineWords: [String] = []
        var scanner = HCLScanner(text)
        while let token = scanner.next() {
            switch token {
            case .open:
                if depth == 0 {
                    if words.count >= 2, words[0] == "variable" { names.insert(words[1]) }
                    inVariables = words == ["variables"]
                }
                depth += 1
                words = []
                lineWords = []
            case .close:
                depth -= 1
                if depth == 0 { inVariables = false }
                words = []
            case .word(let word):
                if depth == 0 { words.append(word) }
                if depth == 1 && inVariables { lineWords.append(word) }
            case .string(let text):
                if depth == 0 { words.append(text) }
            case .equals:
                if depth == 1 && inVariables, lineWords.count == 1 { names.insert(lineWords[0]) }
                lineWords = []
            case .newline:
                lineWords = []
            }
        }
        return names
    }
}

/// HCL2's native syntax cut into what `TemplateVariables` needs.
struct HCLScanner {
    enum Token: Equatable { case open, close, equals, newline, word(String), string(String) }

    let characters: [Character]
    var index = 0

    init(_ text: String) { characters = Array(text) }

    func peek(_ offset: Int = 0) -> Character? {
        index + offset < characters.count ? characters[index + offset] : nil
    }

    mutating func next() -> Token? {
        while let character = peek() {
            switch character {
            case "\n":
                index += 1
                return .newline
            case "#":
                skipLine()
            case "/" where peek(1) == "/":
                skipLine()
            case "/" where peek(1) == "*":
                index += 2
                while index < characters.count, !(peek() == "*" && peek(1) == "/") { index += 1 }
                index += 2
            case "{":
                index += 1
                return .open
            case "}":
                index += 1
                return .close
            case "=" where peek(1) != "=" && peek(1) != ">":
                index += 1
                return .equals
            case "\"":
                return .string(quoted())
            case "<" where peek(1) == "<":
                skipHeredoc()
            default:
                if character.isLetter || character == "_" {
                    var word = ""
                    while let next = peek(), next.isLetter || next.isNumber || next == "_" || next == "-" {
                        word.append(next)
                        index += 1
                    }
                    return .word(word)
                }
                index += 1
            }
        }
        return nil
    }

    mutating func skipLine() {
        while let character = peek(), character != "\n" { index += 1 }
    }

    /// A quoted string, its escapes and `${ }` interpolations (which may hold
    /// quotes of their own) taken whole.
    mutating func quoted() -> String {
        index += 1
        var text = ""
        var interpolation = 0
        while let character = peek() {
            index += 1
            if character == "\\" {
                if let escaped = peek() { text.append(escaped) }
                index += 1
            } else if character == "$" && peek() == "{" {
                interpolation += 1
                text.append("${")
                index += 1
            } else if character == "}" && interpolation > 0 {
                interpolation -= 1
                text.append(character)
            } else if character == "\"" && interpolation == 0 {
                break
            } else if character == "\"" {
                // A string inside an interpolation.
                while let inner = peek(), inner != "\"" { index += inner == "\\" ? 2 : 1 }
                index += 1
            } else if character == "\n" {
                break
            } else {
                text.append(character)
            }
        }
        return text
    }

    /// `<<EOF` or `<<-EOF` up to the line that holds only `EOF` (indented, for `<<-`).
    mutating func skipHeredoc() {
        index += 2
        if peek() == "-" { index += 1 }
        var marker = ""
        while let character = peek(), character.isLetter || character.isNumber || character == "_" {
            marker.append(character)
            index += 1
        }
        guard !marker.isEmpty else { return }
        skipLine()
        while index < characters.count {
            index += 1  // the new line
            var line = ""
            while let character = peek(), character != "\n" {
                line.append(character)
                index += 1
            }
            if line.trimmingCharacters(in: .whitespaces) == marker { return }
        }
    }
}
