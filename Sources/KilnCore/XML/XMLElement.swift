/// An element of an AWS XML answer. AWS's Query APIs answer with plain XML:
/// elements and text, a namespace on the root, entities, nothing more. This
/// small reader (shared by the AWS client and the JUnit reports) keeps Kiln
/// free of libxml2 at run time and is strict: a malformed answer is an error,
/// never a crash or a half-read value.
public struct XMLElement: Sendable, Equatable {
    public let name: String
    public let attributes: [String: String]
    public let children: [XMLElement]
    /// The element's own text (concatenated, entities decoded), trimmed of
    /// the indentation some services add.
    public let text: String

    public init(name: String, attributes: [String: String] = [:], children: [XMLElement] = [], text: String = "") {
        self.name = name
        self.attributes = attributes
        self.children = children
        self.text = text
    }

    /// The first child of that name.
    public subscript(name: String) -> XMLElement? {
        children.first { $0.name == name }
    }

    /// Every child of that name (list members are `<item>` in EC2, `<member>` elsewhere).
    public func all(_ name: String) -> [XMLElement] {
        children.filter { $0.name == name }
    }

    /// Follows a path of child names: `element.path("DescribeImagesResponse", "imagesSet")`.
    public func path(_ names: String...) -> XMLElement? {
        var element: XMLElement? = self
        for name in names { element = element?[name] }
        return element
    }

    /// The text of a child, or nil when there is no such child.
    public func string(_ name: String) -> String? { self[name]?.text }

    /// Depth-first search for the first element of that name.
    public func first(named name: String) -> XMLElement? {
        if self.name == name { return self }
        for child in children {
            if let found = child.first(named: name) { return found }
        }
        return nil
    }
}

public struct XMLParseError: Error, CustomStringConvertible, Sendable, Equatable {
    public let offset: Int
    public let problem: String
    public var description: String { "malformed XML at byte \(offset): \(problem)" }
}

public enum XMLReader {
    public static func parse(_ bytes: [UInt8]) throws -> XMLElement {
        var reader = Reader(bytes: bytes)
        return try reader.document()
    }

    public static func parse(_ text: String) throws -> XMLElement { try parse(Array(text.utf8)) }
}

private struct Reader {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ problem: String) -> XMLParseError { XMLParseError(offset: index, problem: problem) }

    mutating func document() throws -> XMLElement {
        skipMisc()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "<") else { throw fail("no root element") }
        let root = try element()
        skipMisc()
        guard index == bytes.count else { throw fail("content after the root element") }
        return root
    }

    /// Whitespace, the XML declaration, processing instructions, comments, DOCTYPE.
    mutating func skipMisc() {
        while true {
            skipSpace()
            if starts("<?") {
                skip(past: "?>")
            } else if starts("<!--") {
                skip(past: "-->")
            } else if starts("<!DOCTYPE") {
                skip(past: ">")
            } else {
                return
            }
        }
    }

    mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    func starts(_ literal: String) -> Bool {
        let literal = Array(literal.utf8)
        return bytes.count - index >= literal.count && bytes[index..<(index + literal.count)].elementsEqual(literal)
    }

    mutating func skip(past literal: String) {
        let literal = Array(literal.utf8)
        while index < bytes.count {
            if bytes.count - index >= literal.count && bytes[index..<(index + literal.count)].elementsEqual(literal) {
                index += literal.count
                return
            }
            index += 1
        }
    }

    mutating func name() throws -> String {
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "=")].contains(byte) {
                break
            }
            index += 1
        }
        guard index > start else { throw fail("expected a name") }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func element() throws -> XMLElement {
        index += 1  // "<"
        let elementName = try name()
        var attributes: [String: String] = [:]
        while true {
            skipSpace()
            guard index < bytes.count else { throw fail("unclosed start tag <\(elementName)>") }
            if bytes[index] == UInt8(ascii: "/") {
                guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: ">") else {
                    throw fail("expected '/>'")
                }
                index += 2
                return XMLElement(name: elementName, attributes: attributes, children: [], text: "")
            }
            if bytes[index] == UInt8(ascii: ">") {
                index += 1
                break
            }
            let attribute = try name()
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
                throw fail("expected '=' after \(attribute)")
            }
            index += 1
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") else {
                throw fail("expected a quoted value for \(attribute)")
            }
            let quote = bytes[index]
            index += 1
            let start = index
            while index < bytes.count, bytes[index] != quote { index += 1 }
            guard index < bytes.count else { throw fail("unclosed attribute value") }
            attributes[attribute] = try decodeEntities(bytes[start..<index])
            index += 1
        }

        var children: [XMLElement] = []
        var text: [UInt8] = []
        while true {
            guard index < bytes.count else { throw fail("<\(elementName)> is never closed") }
            if bytes[index] == UInt8(ascii: "<") {
                if starts("</") {
                    index += 2
                    let closing = try name()
                    guard closing == elementName else { throw fail("</\(closing)> closes <\(elementName)>") }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ">") else { throw fail("expected '>'") }
                    index += 1
                    let decoded = String(decoding: text, as: UTF8.self)
                    return XMLElement(
                        name: elementName, attributes: attributes, children: children,
                        text: children.isEmpty ? decoded : decoded.trimmingWhitespace())
                } else if starts("<![CDATA[") {
                    index += 9
                    let start = index
                    skip(past: "]]>")
                    guard index <= bytes.count, index - start >= 3 else { throw fail("unclosed CDATA") }
                    text.append(contentsOf: bytes[start..<(index - 3)])
                } else if starts("<!--") {
                    skip(past: "-->")
                } else {
                    children.append(try element())
                }
            } else {
                let start = index
                while index < bytes.count, bytes[index] != UInt8(ascii: "<") { index += 1 }
                text.append(contentsOf: Array(try decodeEntities(bytes[start..<index]).utf8))
            }
        }
    }

    func decodeEntities(_ slice: ArraySlice<UInt8>) throws -> String {
        guard slice.contains(UInt8(ascii: "&")) else { return String(decoding: slice, as: UTF8.self) }
        var out = ""
        var position = slice.startIndex
        while position < slice.endIndex {
            guard slice[position] == UInt8(ascii: "&") else {
                let next = slice[position...].firstIndex(of: UInt8(ascii: "&")) ?? slice.endIndex
                out += String(decoding: slice[position..<next], as: UTF8.self)
                position = next
                continue
            }
            guard let semicolon = slice[position...].firstIndex(of: UInt8(ascii: ";")), semicolon - position <= 10
            else {
                throw XMLParseError(offset: position, problem: "unterminated entity")
            }
            let entity = String(decoding: slice[(position + 1)..<semicolon], as: UTF8.self)
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let scalar: UInt32?
                if entity.hasPrefix("#x") {
                    scalar = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    scalar = UInt32(entity.dropFirst())
                } else {
                    scalar = nil
                }
                guard let scalar, let character = Unicode.Scalar(scalar) else {
                    throw XMLParseError(offset: position, problem: "unknown entity &\(entity);")
                }
                out.unicodeScalars.append(character)
            }
            position = semicolon + 1
        }
        return out
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

extension XMLElement {
    /// The element as XML text: attributes in sorted order (so the same
    /// element always gives the same bytes), text escaped, two-space indents.
    public func serialized(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent)
        let attributeText = attributes.keys.sorted().map {
            " \($0)=\"\(Self.escape(attributes[$0]!, attribute: true))\""
        }.joined()
        if children.isEmpty && text.isEmpty { return "\(pad)<\(name)\(attributeText)/>\n" }
        if children.isEmpty {
            return "\(pad)<\(name)\(attributeText)>\(Self.escape(text, attribute: false))</\(name)>\n"
        }
        var out = "\(pad)<\(name)\(attributeText)>\n"
        if !text.isEmpty { out += "\(pad)  \(Self.escape(text, attribute: false))\n" }
        for child in children { out += child.serialized(indent: indent + 1) }
        return out + "\(pad)</\(name)>\n"
    }

    static func escape(_ text: String, attribute: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where attribute: out += "&quot;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            case "\r": out += "&#13;"
            default:
                // Characters XML 1.0 forbids (most control characters) are dropped.
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
