import Foundation
import KilnCore

/// Shell words for a `#!` script. It follows the script's quoting as a POSIX
/// shell reads it, and escapes each value for where it stands:
/// - as a bare word: one single-quoted word (`'it'\''s'`), a list as several;
/// - inside '...': the quote closed, an escaped quote, reopened (`'\''`);
/// - inside "...": backslashes before `\`, `"`, `$` and `` ` ``;
/// - in a comment: newlines become spaces (a comment ends only at a newline).
/// Where no escaping is safe for every value, the template is refused: in a
/// here-document, `$'...'`, a command substitution within double quotes,
/// backquotes (their body is read again with `\` before `` ` ``, `$` and `\`
/// removed, so the escapes themselves change meaning: POSIX 2.6.3), right
/// after an unquoted `$` (the value would start `$'...'`, `$(...)` or
/// `${...}`), and arithmetic (`$(( ))`, `(( ))`: bash evaluates the text as
/// an expression, quoted or not, and runs a subscript's `$(...)`; bash
/// manual, "Shell Arithmetic"), and the other places bash evaluates text as
/// arithmetic: `$[ ]`, an array subscript (`a[...]`), `[[ ]]` (its `-eq`,
/// `-lt`, ... operands), the arguments of `let`; and the arguments of the
/// commands that run their arguments as code (`eval`, `trap`, `sh -c`). A
/// template that gives a variable the integer attribute (`declare -i`,
/// `typeset -i`, `local -i`) is refused whole when it has placeholders: every
/// later assignment to that variable is arithmetic (`checkTemplate`).
struct ShellEscaper: ContextEscaper {
    enum State: Equatable {
        case normal, singleQuote, doubleQuote, comment, ansiQuote
        case substitutionInDoubleQuotes(depth: Int)
        /// `` `...` ``, opened outside or inside double quotes.
        case backquote(inDoubleQuotes: Bool)
        /// `$((...))` or `((...))`, with the parentheses still open.
        case arithmetic(depth: Int, inDoubleQuotes: Bool)
        /// `$[...]` (bash's old arithmetic expansion), or an array subscript
        /// `name[...]`, with the brackets still open.
        case bracketArithmetic(depth: Int, inDoubleQuotes: Bool)
        /// `[[ ... ]]`: bash reads `-eq`, `-lt`, ... operands as arithmetic.
        case conditional
    }

    private(set) var state: State = .normal
    /// Here-documents whose bodies start at the next line, then the one being read.
    private var pendingHereDocuments: [(delimiter: String, stripTabs: Bool)] = []
    private var hereDocument: (delimiter: String, stripTabs: Bool)?
    private var currentLine = ""
    private var previous: Character = "\n"
    private var escaped = false
    /// The last character read is an unescaped `$` outside single quotes.
    private var afterDollar = false
    /// The simple command read so far (outside quotes), for its first words.
    private var command = ""

    mutating func read(_ text: String) {
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            defer { index += 1 }
            if hereDocument != nil {
                if character == "\n" {
                    let line = hereDocument!.stripTabs ? String(currentLine.drop { $0 == "\t" }) : currentLine
                    if line == hereDocument!.delimiter { hereDocument = nil }
                    currentLine = ""
                } else {
                    currentLine.append(character)
                }
                previous = character
                continue
            }
            afterDollar = false
            if escaped {
                escaped = false
                previous = character
                continue
            }
            switch state {
            case .normal:
                switch character {
                case "\\": escaped = true
                case "'": state = .singleQuote
                case "\"": state = .doubleQuote
                case "$" where index + 1 < characters.count && characters[index + 1] == "'":
                    state = .ansiQuote
                    index += 1
                case "$" where Self.opensArithmetic(characters, at: index + 1):
                    state = .arithmetic(depth: 2, inDoubleQuotes: false)
                    index += 2
                case "$" where index + 1 < characters.count && characters[index + 1] == "[":
                    state = .bracketArithmetic(depth: 1, inDoubleQuotes: false)
                    index += 1
                case "$": afterDollar = true
                case "["
                where index + 1 < characters.count && characters[index + 1] == "["
                    && (previous.isWhitespace || ";&|(!".contains(previous)):
                    state = .conditional
                    index += 1
                case "[" where previous.isLetter || previous.isNumber || previous == "_":
                    state = .bracketArithmetic(depth: 1, inDoubleQuotes: false)
                case "(" where Self.opensArithmetic(characters, at: index):
                    state = .arithmetic(depth: 2, inDoubleQuotes: false)
                    index += 1
                case "`": state = .backquote(inDoubleQuotes: false)
                case "#"
                where previous.isWhitespace || previous == ";" || previous == "(" || previous == "|" || previous == "&"
                    || previous == "\n":
                    state = .comment
                case "<"
                where index + 1 < characters.count && characters[index + 1] == "<"
                    && (index + 2 >= characters.count || characters[index + 2] != "<"):
                    index += 2
                    var stripTabs = false
                    if index < characters.count && characters[index] == "-" { stripTabs = true; index += 1 }
                    while index < characters.count && (characters[index] == " " || characters[index] == "\t") {
                        index += 1
                    }
                    var word = ""
                    while index < characters.count && !characters[index].isWhitespace
                        && !";|&<>()".contains(characters[index])
                    {
                        word.append(characters[index])
                        index += 1
                    }
                    index -= 1
                    let delimiter = word.filter { $0 != "'" && $0 != "\"" && $0 != "\\" }
                    if !delimiter.isEmpty { pendingHereDocuments.append((delimiter, stripTabs)) }
                case "\n":
                    startPendingHereDocument()
                default: break
                }
                if case .normal = state {
                    if "\n;&|(){}".contains(character) { command = "" } else { command.append(character) }
                } else if case .comment = state {
                    command = ""
                }
            case .singleQuote:
                if character == "'" { state = .normal }
            case .ansiQuote:
                if character == "\\" { escaped = true } else if character == "'" { state = .normal }
            case .doubleQuote:
                switch character {
                case "\\": escaped = true
                case "\"": state = .normal
                case "$" where Self.opensArithmetic(characters, at: index + 1):
                    state = .arithmetic(depth: 2, inDoubleQuotes: true)
                    index += 2
                case "$" where index + 1 < characters.count && characters[index + 1] == "(":
                    state = .substitutionInDoubleQuotes(depth: 1)
                    index += 1
                case "$" where index + 1 < characters.count && characters[index + 1] == "[":
                    state = .bracketArithmetic(depth: 1, inDoubleQuotes: true)
                    index += 1
                case "$": afterDollar = true
                case "`": state = .backquote(inDoubleQuotes: true)
                default: break
                }
            case .substitutionInDoubleQuotes(let depth):
                if character == "(" { state = .substitutionInDoubleQuotes(depth: depth + 1) }
                if character == ")" {
                    state = depth == 1 ? .doubleQuote : .substitutionInDoubleQuotes(depth: depth - 1)
                }
            case .backquote(let inDoubleQuotes):
                if character == "\\" {
                    escaped = true
                } else if character == "`" {
                    state = inDoubleQuotes ? .doubleQuote : .normal
                }
            case .arithmetic(let depth, let inDoubleQuotes):
                if character == "(" { state = .arithmetic(depth: depth + 1, inDoubleQuotes: inDoubleQuotes) }
                if character == ")" {
                    state =
                        depth == 1
                        ? (inDoubleQuotes ? .doubleQuote : .normal)
                        : .arithmetic(depth: depth - 1, inDoubleQuotes: inDoubleQuotes)
                }
            case .bracketArithmetic(let depth, let inDoubleQuotes):
                if character == "[" { state = .bracketArithmetic(depth: depth + 1, inDoubleQuotes: inDoubleQuotes) }
                if character == "]" {
                    state =
                        depth == 1
                        ? (inDoubleQuotes ? .doubleQuote : .normal)
                        : .bracketArithmetic(depth: depth - 1, inDoubleQuotes: inDoubleQuotes)
                }
            case .conditional:
                if character == "]" && index + 1 < characters.count && characters[index + 1] == "]" {
                    state = .normal
                    index += 1
                }
            case .comment:
                if character == "\n" {
                    state = .normal
                    startPendingHereDocument()
                }
            }
            previous = character
        }
    }

    /// Whether `((` starts at `index`: bash reads `((` as arithmetic
    /// (`$((` as its expansion, `((` as its command) before anything else.
    private static func opensArithmetic(_ characters: [Character], at index: Int) -> Bool {
        index + 1 < characters.count && characters[index] == "(" && characters[index + 1] == "("
    }

    mutating func didRender() {
        afterDollar = false
        if case .normal = state { command.append("x") }
        previous = "x"  // a word now stands here: a following '#' is no comment
        if hereDocument != nil { currentLine.append("x") }
    }

    private mutating func startPendingHereDocument() {
        if !pendingHereDocuments.isEmpty {
            hereDocument = pendingHereDocuments.removeFirst()
            currentLine = ""
        }
    }

    func escape(_ value: TemplateValue, name: String, location: String, following: String) throws -> String {
        func refuse(_ why: String) -> KilnError {
            KilnError.badConfiguration("\(location): {{ \(name) }} \(why)")
        }
        if hereDocument != nil {
            throw refuse(
                """
                stands in a here-document, where no escaping is safe for every value; \
                assign it to a variable before the here-document and use that
                """
            )
        }
        if escaped { throw refuse("follows a backslash") }
        if afterDollar {
            throw refuse(
                """
                stands right after '$', where the value would start an expansion ($'...', $(...), ${...}); \
                write '\\$' or '$' in single quotes for a literal dollar
                """
            )
        }
        if state == .normal || state == .doubleQuote, let runner = Self.codeRunner(command) {
            throw refuse(
                """
                is an argument of '\(runner)', which runs its arguments as code (or as arithmetic), \
                so no quoting holds; pass the value in a variable the code reads instead
                """
            )
        }
        if case .list = value, state != .normal {
            throw refuse("is a list, which can stand only as bare words (outside quotes)")
        }
        switch state {
        case .normal:
            if case .list(let items) = value { return items.map { Self.singleQuoted($0.text) }.joined(separator: " ") }
            return Self.singleQuoted(value.text)
        case .singleQuote:
            return value.text.replacingOccurrences(of: "'", with: "'\\''")
        case .doubleQuote:
            var out = ""
            for character in value.text {
                if "\\\"$`".contains(character) { out.append("\\") }
                out.append(character)
            }
            return out
        case .comment:
            return value.text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        case .ansiQuote:
            throw refuse("stands inside $'...', where escapes are interpreted; use '...' or a bare word")
        case .substitutionInDoubleQuotes:
            throw refuse(
                """
                stands inside a command substitution within double quotes; use it as a bare word there, or in a variable
                """
            )
        case .backquote:
            throw refuse(
                """
                stands inside backquotes, where the shell removes backslashes before reading the command again, \
                so no escaping holds; use $(...) instead
                """
            )
        case .bracketArithmetic:
            throw refuse(
                """
                stands inside $[ ] or an array subscript, where bash evaluates the value as arithmetic and runs \
                any $(...) in it; assign it to a variable and check it is a number first
                """
            )
        case .conditional:
            throw refuse(
                """
                stands inside [[ ]], where bash evaluates -eq, -lt, ... operands as arithmetic and runs any \
                $(...) in them; use [ ] (test), or check the value is a number first
                """
            )
        case .arithmetic:
            throw refuse(
                """
                stands inside arithmetic ($(( )) or (( ))), where bash evaluates the value as an expression, \
                quoted or not, and runs any $(...) in an array subscript; assign it to a variable and check it is \
                a number first
                """
            )
        }
    }

    /// The command among `let`, `eval`, `trap` and `sh|bash|... -c` that
    /// `command` (a simple command's text so far) starts with, if any.
    static func codeRunner(_ command: String) -> String? {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard var first = words.first else { return nil }
        var rest = words.dropFirst()
        // Past assignments and wrappers that run the next word (`FOO=1 sudo bash -c`).
        while first.contains("=") || ["sudo", "exec", "command", "env", "nohup", "time"].contains(first) {
            guard let next = rest.first else { return nil }
            first = next
            rest = rest.dropFirst()
        }
        if ["let", "eval", "trap"].contains(first) { return first }
        if ["sh", "bash", "dash", "ksh", "zsh", "/bin/sh", "/bin/bash"].contains(first),
            rest.contains(where: { $0.hasPrefix("-") && !$0.hasPrefix("--") && $0.contains("c") })
        {
            return "\(first) -c"
        }
        return nil
    }

    /// Refuses a template with placeholders that gives a variable the
    /// integer attribute: each later assignment to it is evaluated as
    /// arithmetic (bash manual, "Bash Builtins", declare -i).
    static func checkTemplate(_ text: String, hasPlaceholders: Bool, template: String) throws {
        guard hasPlaceholders else { return }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first,
                ["declare", "typeset", "local", "readonly", "export"].contains(String(first))
            else { continue }
            if words.dropFirst().contains(where: { $0.hasPrefix("-") && !$0.hasPrefix("--") && $0.contains("i") }) {
                throw KilnError.badConfiguration(
                    """
                    \(template):\(number + 1): '\(first) -i' makes every later assignment to the variable arithmetic, \
                    where bash runs any $(...) in a value; user data with placeholders cannot use it
                    """
                )
            }
        }
    }

    static func singleQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
