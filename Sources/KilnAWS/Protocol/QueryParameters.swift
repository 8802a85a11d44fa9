/// The parameters of a Query API call, in order, with the naming rules for
/// lists, filters and tags that EC2, Auto Scaling, ELBv2 and STS share.
public struct QueryParameters: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(name: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { pairs.append((name, value)) }
    }

    public static func == (lhs: QueryParameters, rhs: QueryParameters) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    public subscript(name: String) -> String? {
        get { pairs.first { $0.name == name }?.value }
        set {
            pairs.removeAll { $0.name == name }
            if let newValue { pairs.append((name, newValue)) }
        }
    }

    public mutating func add(_ name: String, _ value: String?) {
        if let value { pairs.append((name, value)) }
    }

    public mutating func add(_ name: String, _ value: Int?) {
        if let value { pairs.append((name, String(value))) }
    }

    public mutating func add(_ name: String, _ value: Bool?) {
        if let value { pairs.append((name, value ? "true" : "false")) }
    }

    /// `prefix.1`, `prefix.2`, ... (EC2 writes `InstanceId.1`; the others
    /// `InstanceIds.member.1`, so they pass `InstanceIds.member`).
    public mutating func addList(_ prefix: String, _ values: [String]) {
        for (index, value) in values.enumerated() { pairs.append(("\(prefix).\(index + 1)", value)) }
    }

    /// EC2 filters: `Filter.N.Name`, `Filter.N.Value.M`, in the order given.
    public mutating func addFilters(_ filters: [(name: String, values: [String])]) {
        for (index, filter) in filters.enumerated() {
            pairs.append(("Filter.\(index + 1).Name", filter.name))
            addList("Filter.\(index + 1).Value", filter.values)
        }
    }

    /// Key/value structures under a list prefix: `Tag.N.Key`, `Tag.N.Value`.
    public mutating func addKeyValues(
        _ prefix: String, _ entries: [(key: String, value: String)], keyName: String = "Key",
        valueName: String = "Value"
    ) {
        for (index, entry) in entries.enumerated() {
            pairs.append(("\(prefix).\(index + 1).\(keyName)", entry.key))
            pairs.append(("\(prefix).\(index + 1).\(valueName)", entry.value))
        }
    }

    /// The form body: `name=value` pairs, RFC 3986 encoded, joined by `&`.
    public func formEncoded() -> String {
        pairs.map { "\(SigV4Signer.uriEncode($0.name))=\(SigV4Signer.uriEncode($0.value))" }.joined(separator: "&")
    }
}
