import Foundation
import KilnArtifacts
import KilnCore

extension UserDataFormat {
    /// From a template's first line: `#!` is a script, `#cloud-config` a cloud-config.
    static func detect(_ text: String) -> UserDataFormat? {
        if text.hasPrefix("#!") { return .shell }
        if text.hasPrefix("#cloud-config") { return .cloudConfig }
        return nil
    }
}

/// Where a variable's value comes from (recorded in userdata-<env>.json).
public enum VariableSource: Sendable, Equatable {
    case literal
    case environment(String)
    case terraform(String)
    case kiln
    /// Marked `secret: true`: never rendered.
    case secret

    var description: String {
        switch self {
        case .literal: "kiln.yml"
        case .environment(let name): "variable \(name)"
        case .terraform(let output): "terraform output \(output)"
        case .kiln: "image.json and the pipeline"
        case .secret: "secret"
        }
    }
}

public struct DeclaredVariable: Sendable, Equatable {
    public var name: String
    public var source: VariableSource
    public var literal: String?
    public var location: String
}

/// `environments.<name>` of kiln.yml, the parts kiln-userdata reads.
public struct UserDataConfiguration: Sendable {
    public struct Part: Sendable, Equatable {
        public var template: String
        public var format: UserDataFormat?
    }

    public var environment: String
    public var format: UserDataFormat?
    public var parts: [Part]
    public var gzip: Bool
    public var variables: [DeclaredVariable]

    public static func load(_ file: ConfigFile, environment: String) throws -> UserDataConfiguration {
        let keyPath = "environments.\(environment)"
        guard let section = file.node(keyPath) else {
            let known: [String]
            if case .mapping(let entries, _)? = file.node("environments") {
                known = entries.map(\.key)
            } else {
                known = []
            }
            throw KilnError.badConfiguration(
                """
                \(file.path ?? "kiln.yml"): no '\(keyPath)' section (environments: \
                \(known.isEmpty ? "none" : known.joined(separator: ", ")))
                """
            )
        }
        guard case .mapping(let entries, _) = section else { throw file.fail(section, keyPath, "expected a mapping") }
        guard let userData = entries.first(where: { $0.key == "userdata" })?.value else {
            throw file.fail(
                section, "\(keyPath).userdata",
                "missing: name the template (userdata.template) or parts (userdata.parts)")
        }
        let fields = try file.mapping(
            userData, "\(keyPath).userdata", allowed: ConfigSchema.userData.keys)
        let format = try fields["format"].map {
            try file.value($0, "\(keyPath).userdata.format", as: UserDataFormat.self)
        }
        var parts: [Part] = []
        switch (fields["template"], fields["parts"]) {
        case (let template?, nil):
            parts = [
                Part(
                    template: try file.scalar(template, "\(keyPath).userdata.template"),
                    format: format == .multipart ? nil : format)
            ]
        case (nil, let list?):
            parts = try file.list(list, "\(keyPath).userdata.parts").enumerated().map { index, item in
                let partPath = "\(keyPath).userdata.parts[\(index)]"
                if case .scalar(let template, _) = item { return Part(template: template, format: nil) }
                let partFields = try file.mapping(
                    item, partPath, allowed: ConfigSchema.userData["parts"].flatMap(\.items)?.keys ?? [])
                guard let template = partFields["template"] else {
                    throw file.fail(item, partPath, "a part needs 'template'")
                }
                return Part(
                    template: try file.scalar(template, "\(partPath).template"),
                    format: try partFields["format"].map {
                        try file.value($0, "\(partPath).format", as: UserDataFormat.self)
                    })
            }
            guard !parts.isEmpty else { throw file.fail(list, "\(keyPath).userdata.parts", "is empty") }
        default:
            throw file.fail(userData, "\(keyPath).userdata", "give exactly one of template or parts")
        }
        var variables: [DeclaredVariable] = []
        if let node = entries.first(where: { $0.key == "variables" })?.value {
            guard case .mapping(let declared, _) = node else {
                throw file.fail(node, "\(keyPath).variables", "expected a mapping")
            }
            for (name, value) in declared {
                let variablePath = "\(keyPath).variables.\(name)"
                guard Template.isName(name), !name.hasPrefix("kiln."), !name.hasPrefix("tf.") else {
                    throw file.fail(
                        value, variablePath,
                        "not a usable variable name (letters, digits, '_'; kiln.* and tf.* are taken)")
                }
                if case .scalar(let literal, _) = value {
                    variables.append(
                        .init(name: name, source: .literal, literal: literal, location: file.location(value)))
                    continue
                }
                let spec = try file.mapping(value, variablePath, allowed: ConfigSchema.variable.keys)
                let secret =
                    try spec["secret"].map { try file.value($0, "\(variablePath).secret", as: Bool.self) } ?? false
                let source: VariableSource
                var literal: String?
                if secret {
                    source = .secret
                } else if let env = spec["env"] {
                    source = .environment(try file.scalar(env, "\(variablePath).env"))
                } else if let output = spec["terraform"] {
                    source = .terraform(try file.scalar(output, "\(variablePath).terraform"))
                } else if let given = spec["value"] {
                    source = .literal
                    literal = try file.scalar(given, "\(variablePath).value")
                } else {
                    throw file.fail(value, variablePath, "give value, env or terraform (or secret: true)")
                }
                variables.append(.init(name: name, source: source, literal: literal, location: file.location(value)))
            }
        }
        let gzip = try fields["gzip"].map { try file.value($0, "\(keyPath).userdata.gzip", as: Bool.self) } ?? false
        return UserDataConfiguration(
            environment: environment, format: format, parts: parts, gzip: gzip, variables: variables)
    }
}
