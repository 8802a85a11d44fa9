import Foundation
import KilnCore

/// A value of a Terraform output that can be rendered into text: a string,
/// a number (kept as Terraform wrote it), a boolean, or a list of them.
public indirect enum TerraformValue: Sendable, Equatable {
    case string(String)
    case number(String)
    case boolean(Bool)
    case list([TerraformValue])
}

/// `terraform output -json`: each output's value, type and sensitivity.
/// The environments are made by Terraform; kiln-userdata and kiln-rotate
/// read their names and addresses from here (`--terraform-outputs`,
/// `KILN_TERRAFORM_OUTPUTS`).
public struct TerraformOutputs: Sendable {
    public struct Output: Sendable {
        /// nil when the value is a map or object (it cannot be rendered).
        public let value: TerraformValue?
        public let sensitive: Bool
        public let typeDescription: String

        public init(value: TerraformValue?, sensitive: Bool, typeDescription: String) {
            self.value = value
            self.sensitive = sensitive
            self.typeDescription = typeDescription
        }

        /// The value when it is a string.
        public var string: String? {
            if case .string(let text)? = value { return text }
            return nil
        }
    }

    public let outputs: [String: Output]
    public let path: String?

    public init(outputs: [String: Output], path: String?) {
        self.outputs = outputs
        self.path = path
    }

    public static let none = TerraformOutputs(outputs: [:], path: nil)

    /// The outputs whose values are strings (names, ids, URLs).
    public var strings: [String: String] { outputs.compactMapValues(\.string) }

    /// `--terraform-outputs`, else `KILN_TERRAFORM_OUTPUTS`, else none.
    public static func resolve(flag: String?, settings: Settings) throws -> TerraformOutputs {
        guard let path = flag ?? settings.job["KILN_TERRAFORM_OUTPUTS"] else { return .none }
        return try load(path: path)
    }

    public static func load(path: String) throws -> TerraformOutputs {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.badConfiguration("\(path): Terraform outputs file not found")
        }
        guard var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw KilnError.badConfiguration("\(path): not the JSON of 'terraform output -json'")
        }
        // `terraform show -json` of a state holds the same outputs under
        // `values.outputs` (Terraform's "JSON Output Format", values representation).
        if object["format_version"] is String, let values = object["values"] as? [String: Any] {
            object = values["outputs"] as? [String: Any] ?? [:]
        }
        var outputs: [String: Output] = [:]
        for (name, entry) in object {
            guard let entry = entry as? [String: Any], entry.keys.contains("value") else {
                throw KilnError.badConfiguration(
                    "\(path): output '\(name)' has no value (is this 'terraform output -json'?)")
            }
            guard let sensitive = sensitivity(entry["sensitive"]) else {
                throw KilnError.badConfiguration(
                    """
                    \(path): output '\(name)': 'sensitive' must be true or false, as Terraform writes it \
                    (found \(entry["sensitive"] == nil ? "none" : "a value that is not a boolean"))
                    """)
            }
            let type = entry["type"].map { "\($0)" } ?? "unknown"
            outputs[name] = Output(value: convert(entry["value"] as Any), sensitive: sensitive, typeDescription: type)
        }
        return TerraformOutputs(outputs: outputs, path: path)
    }

    /// Terraform marks a whole output: `"sensitive": true` or `false`
    /// (`terraform output -json`, and each output of `terraform show -json`;
    /// a plan's outputs carry one boolean too, Terraform's jsonplan says so).
    /// A structure with `true` at its sensitive leaves is how Terraform marks
    /// parts of a value (`sensitive_values`, `after_sensitive`): any `true`
    /// in it makes the whole output sensitive. Anything else is no
    /// sensitivity Kiln can trust: nil.
    static func sensitivity(_ marker: Any?) -> Bool? {
        switch marker {
        case let number as NSNumber:
            guard String(cString: number.objCType) == "c" else { return nil }
            return number.boolValue
        case let list as [Any]:
            let leaves = list.map(sensitivity)
            return leaves.contains(nil) ? nil : leaves.contains(true)
        case let object as [String: Any]:
            let leaves = object.values.map(sensitivity)
            return leaves.contains(nil) ? nil : leaves.contains(true)
        default:
            return nil
        }
    }

    static func convert(_ value: Any) -> TerraformValue? {
        switch value {
        case let text as String: return .string(text)
        case let number as NSNumber:
            // JSON's true and false arrive as boolean NSNumbers (objCType "c").
            if String(cString: number.objCType) == "c" { return .boolean(number.boolValue) }
            return .number(number.stringValue)
        case let list as [Any]:
            let items = list.map(convert)
            guard
                items.allSatisfy({ item in
                    if case .list? = item { return false }
                    return item != nil
                })
            else { return nil }
            return .list(items.compactMap { $0 })
        default: return nil
        }
    }
}
