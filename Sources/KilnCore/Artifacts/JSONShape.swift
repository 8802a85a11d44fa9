import Foundation

/// What JSON decoders let pass and an artifact must not hold: the same key
/// twice in one object (Foundation keeps one of them without a word, so two
/// readers could see two different artifacts). RFC 8259 section 4: "The
/// names within an object SHOULD be unique"; Kiln's artifacts require it.
enum JSONShape {
    /// The first key that appears twice in an object, as a dotted path
    /// (`artifact.path`), with the line of its second appearance.
    static func firstDuplicateKey(in data: Data) -> (path: String, line: Int)? {
        let bytes = [UInt8](data)
        var index = 0
        var line = 1
        // One frame per open object or array: the keys seen, the path to it.
        struct Frame {
            var isObject: Bool
            var keys: Set<String> = []
            var path: String
            var expectingKey = true
            var currentKey: String?
            var element = 0
        }
        var stack: [Frame] = []

        func readString() -> String? {
            // At the opening quote.
            index += 1
            var out = [UInt8]()
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") {
                    out.append(byte)
                    if index + 1 < bytes.count { out.append(bytes[index + 1]) }
                    index += 2
                    continue
                }
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(byte)
                index += 1
            }
            return nil
        }

        func childPath(_ frame: Frame) -> String {
            if frame.isObject {
                let key = frame.currentKey ?? "?"
                return frame.path.isEmpty ? key : "\(frame.path).\(key)"
            }
            return "\(frame.path)[\(frame.element)]"
        }

        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\n"):
                line += 1
                index += 1
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let path = stack.last.map(childPath) ?? ""
                stack.append(Frame(isObject: byte == UInt8(ascii: "{"), path: path))
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
                index += 1
            case UInt8(ascii: ","):
                if var top = stack.popLast() {
                    if top.isObject { top.expectingKey = true } else { top.element += 1 }
                    stack.append(top)
                }
                index += 1
            case UInt8(ascii: "\""):
                let keyLine = line
                guard let text = readString() else { return nil }
                if var top = stack.popLast() {
                    if top.isObject && top.expectingKey {
                        if !top.keys.insert(text).inserted {
                            let path = top.path.isEmpty ? text : "\(top.path).\(text)"
                            return (path, keyLine)
                        }
                        top.currentKey = text
                        top.expectingKey = false
                    }
                    stack.append(top)
                }
            default:
                index += 1
            }
        }
        return nil
    }
}
