/// Finds an alias used as a mapping key (`? *name` or `*name :`) in YAML
/// text, before the text reaches Yams. Yams builds a mapping by hashing its
/// keys, and a key that is an alias of nested aliases is hashed whole: an
/// "alias bomb" whose aliases are keys takes exponential time inside the
/// parser, before Kiln's own refusal of anchors and aliases (which walks
/// the parsed tree) can run. Kiln refuses every alias anyway, so any alias
/// in key position is refused here, by its line.
///
/// A scan of the text's lexical layer only (YAML 1.2, chapter 6 and 7):
/// quoted scalars, comments and block scalars are skipped, and an alias is
/// `*` where a node may start (YAML 1.2 section 6.9.2, "c-ns-alias-node").
enum YAMLKeyAliasScan {
    /// The line and name of the first alias used as a key.
    static func firstKeyAlias(in text: String) -> (line: Int, name: String)? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        var quote: Unicode.Scalar?  // inside a quoted scalar that spans lines
        var blockIndent: Int?  // inside a block scalar: lines more indented than this
        for (number, line) in lines.enumerated() {
            let indent = line.prefix { $0 == " " }.count
            if let parent = blockIndent {
                if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) || indent > parent { continue }
                blockIndent = nil
            }
            var index = 0
            // Where a node may start: the line's beginning, after `- `, `? `, `: `, `[`, `{`, `,`.
            var nodeStart = true
            var afterQuestion = false
            while index < line.count {
                let character = line[index]
                if let open = quote {
                    if open == "\"" && character == "\\" { index += 2; continue }
                    if character == open {
                        if open == "'" && index + 1 < line.count && line[index + 1] == "'" { index += 2; continue }
                        quote = nil
                        nodeStart = false
                    }
                    index += 1
                    continue
                }
                switch character {
                case " ", "\t", "\r":
                    index += 1
                    continue
                case "#" where index == 0 || line[index - 1] == " " || line[index - 1] == "\t":
                    index = line.count
                    continue
                case "\"", "'":
                    quote = character
                case "*" where nodeStart:
                    var end = index + 1
                    // libyaml (under Yams) takes an alias's name as letters, digits, `_` and `-`.
                    while end < line.count,
                        line[end].properties.isAlphabetic || ("0"..."9").contains(line[end])
                            || line[end] == "_" || line[end] == "-"
                    {
                        end += 1
                    }
                    let name = String(String.UnicodeScalarView(line[(index + 1)..<end]))
                    var next = end
                    while next < line.count && (line[next] == " " || line[next] == "\t") { next += 1 }
                    if afterQuestion || (next < line.count && line[next] == ":") {
                        return (number + 1, name)
                    }
                    index = end
                    nodeStart = false
                    continue
                case "-" where separated(line, after: index), "?" where separated(line, after: index),
                    ":" where separated(line, after: index):
                    nodeStart = true
                    afterQuestion = character == "?"
                    index += 1
                    continue
                case "[", "{", ",":
                    nodeStart = true
                    afterQuestion = false
                case "|" where nodeStart, ">" where nodeStart:
                    // A block scalar: its content is the lines indented more than this one.
                    blockIndent = indent
                    index = line.count
                    continue
                default:
                    nodeStart = false
                }
                index += 1
            }
        }
        return nil
    }

    /// An indicator (`-`, `?`, `:`) counts only when a space, a tab or the
    /// line's end follows it (`a-b`, `a:b` are plain text).
    private static func separated(_ line: [Unicode.Scalar], after index: Int) -> Bool {
        index + 1 == line.count || line[index + 1] == " " || line[index + 1] == "\t"
    }
}
