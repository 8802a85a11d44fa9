import KilnCore

// Decoding of Query answers, shared by every service's file.

/// Reads one action's answer; a missing required field is an
/// `AWSMalformedResponse` naming the service, action and field.
struct AnswerDecoder {
    let service: AWSService
    let action: String

    init(_ service: AWSService, _ action: String) {
        self.service = service
        self.action = action
    }

    func missing(_ what: String) -> AWSMalformedResponse {
        AWSMalformedResponse(service: service.rawValue, action: action, problem: "no \(what)")
    }

    /// The text of a required element, found by a path of child names.
    func required(_ element: XMLElement, _ path: String...) throws -> String {
        var current: XMLElement? = element
        for name in path { current = current?[name] }
        guard let current else { throw missing("\(path.joined(separator: ".")) in <\(element.name)>") }
        return current.text
    }

    func requiredInt(_ element: XMLElement, _ name: String) throws -> Int {
        let text = try required(element, name)
        guard let value = Int(text) else {
            throw AWSMalformedResponse(
                service: service.rawValue, action: action, problem: "\(name) is not a number: \(text)")
        }
        return value
    }

    func optionalInt(_ element: XMLElement, _ name: String) -> Int? { element.string(name).flatMap { Int($0) } }

    func bool(_ element: XMLElement, _ name: String) -> Bool { element.string(name) == "true" }

    /// The members of a list found anywhere under `root` (a list the answer
    /// leaves out, or writes empty, is no members). EC2 members are `<item>`.
    func items(_ root: XMLElement, _ list: String, member: String = "item") -> [XMLElement] {
        let holder = root.name == list ? root : root[list] ?? root["\(action)Result"]?[list] ?? root.first(named: list)
        return holder?.all(member) ?? []
    }

    /// The direct child list's members (no deep search: nested lists reuse names).
    func children(_ element: XMLElement, _ list: String, member: String) -> [XMLElement] {
        element[list]?.all(member) ?? []
    }
}
