/// The keys `kiln.yml` may hold, section by section, so that a typo
/// (`checkout.stratgy`, `bulid:`) is exit 78 naming its line in every stage,
/// also in the sections a stage does not read itself: kiln-build refuses
/// `checkout.stratgy` as kiln-checkout does.
///
/// It lives here, not in each stage's library, because a stage may not see
/// another stage's code (docs/architecture.md, Modules) and every stage
/// checks the whole file. Each stage's configuration reads its keys from its
/// section here (`ConfigSchema.build`, ...), so they are written once.
public indirect enum ConfigSchema: Sendable {
    /// A value whose shape its reader checks (a scalar, or the mapping or
    /// list that reader knows).
    case value
    /// A mapping with these keys only. When the node is a scalar or a list
    /// instead, its reader says what it expected.
    case section([String: ConfigSchema])
    /// A mapping whose keys the user names (environments, variables); each
    /// value has this shape.
    case named(ConfigSchema)
    /// A list whose items have this shape (or one item standing for a list).
    case list(ConfigSchema)

    /// The keys of a section, for readers that list them in a message.
    public var keys: Set<String> {
        guard case .section(let fields) = self else { return [] }
        return Set(fields.keys)
    }

    /// The shape of a list's items.
    public var items: ConfigSchema? {
        guard case .list(let inner) = self else { return nil }
        return inner
    }

    /// The schema of one key of a section.
    public subscript(key: String) -> ConfigSchema? {
        guard case .section(let fields) = self else { return nil }
        return fields[key]
    }
}

extension ConfigSchema {
    /// `checkout`: kiln-checkout's settings (CheckoutRequest.resolve).
    public static let checkout = ConfigSchema.section([
        "strategy": .value, "submodules": .value, "clean_flags": .value, "depth": .value, "submodule_depth": .value,
        "cache_dir": .value,
        "timeout": .value,
    ])

    /// One command of `build.commands` or `build.test`: a shell line, or these keys.
    public static let buildCommand = ConfigSchema.section([
        "run": .value, "name": .value, "env": .value, "timeout": .value,
    ])

    /// `build`: kiln-build's settings (BuildConfiguration).
    public static let build = ConfigSchema.section([
        "commands": .list(buildCommand), "test": .list(buildCommand), "junit": .value,
        "package": .section(["paths": .value, "file": .value]), "timeout": .value,
    ])

    /// `bake`: kiln-bake's settings (BakeConfiguration).
    public static let bake = ConfigSchema.section([
        "template": .value, "playbooks": .value, "instance_type": .value, "subnet": .value,
        "communicator": .value, "variables": .value, "share_with": .value, "channel": .value,
        "keep": .value, "base": .section(["owner": .value, "name": .value]), "source_ami": .value, "packer": .value,
        // A list of regions, or a mapping of region to its settings.
        "regions": .named(.section(["kms_key": .value])), "encrypt_boot": .value,
        "deprecate_after_days": .value,
    ])

    /// `environments.<name>.userdata`: kiln-userdata's settings (UserDataConfiguration).
    public static let userData = ConfigSchema.section([
        "template": .value, "parts": .list(.section(["template": .value, "format": .value])), "format": .value,
        "gzip": .value,
    ])

    /// `environments.<name>.variables.<variable>`: a literal, or these keys.
    public static let variable = ConfigSchema.section([
        "value": .value, "env": .value, "terraform": .value, "secret": .value,
    ])

    /// `environments.<name>.rotate.health`: the health gate (RotateConfiguration).
    public static let health = ConfigSchema.section([
        "grace": .value, "consecutive": .value, "unhealthy_threshold": .value, "poll": .value, "probe_interval": .value,
        "timeout": .value,
        "url": .value, "expect_body": .value, "probe_timeout": .value, "alarms": .value,
    ])

    /// `environments.<name>.rotate`: kiln-rotate's settings (RotateConfiguration).
    public static let rotate = ConfigSchema.section([
        "auto_scaling_group": .section(["terraform": .value]), "strategy": .value, "batch": .value,
        "max_unavailable": .value, "canary_soak": .value, "health": health, "suspend": .value,
        "raise_max_size": .value, "stale_after": .value, "checkpoints": .value, "checkpoint_soak": .value,
    ])

    /// `environments.<name>`: what the deploy stages read of one environment.
    public static let environment = ConfigSchema.section([
        "userdata": userData, "variables": .named(variable), "rotate": rotate,
        "url": .section(["terraform": .value]),
    ])

    /// The whole of `kiln.yml`.
    public static let kilnYML = ConfigSchema.section([
        "application": .value, "checkout": checkout, "build": build, "bake": bake,
        "environments": .named(environment),
    ])
}

extension ConfigFile {
    /// Refuses every key the schema does not know, first in the file's
    /// order, with the closest known key when one is near (a typo).
    public func check(against schema: ConfigSchema) throws {
        guard let root else { return }
        try check(root, schema, keyPath: "")
    }

    private func check(_ node: ConfigNode, _ schema: ConfigSchema, keyPath: String) throws {
        switch (schema, node) {
        case (.section(let fields), .mapping(let entries, _)):
            for (key, value) in entries {
                guard let inner = fields[key] else {
                    throw unknownKey(key, in: keyPath, value: value, known: Set(fields.keys))
                }
                try check(value, inner, keyPath: keyPath.isEmpty ? key : "\(keyPath).\(key)")
            }
        case (.named(let inner), .mapping(let entries, _)):
            for (key, value) in entries {
                try check(value, inner, keyPath: keyPath.isEmpty ? key : "\(keyPath).\(key)")
            }
        case (.list(let inner), .sequence(let items, _)):
            for (index, item) in items.enumerated() { try check(item, inner, keyPath: "\(keyPath)[\(index)]") }
        case (.list(let inner), _):
            try check(node, inner, keyPath: keyPath)
        default:
            // A value, or a shape the reader refuses with its own message.
            return
        }
    }
}

extension ConfigSchema {
    /// The one known key within two edits of `key` (Levenshtein distance:
    /// one letter added, dropped or changed counts one), when exactly one is
    /// closest; nil when none is near or two are equally near.
    static func closest(to key: String, among known: [String]) -> String? {
        let scored = known.map { (key: $0, distance: editDistance(key, $0)) }.filter { $0.distance <= 2 }
        guard let best = scored.map(\.distance).min() else { return nil }
        let nearest = scored.filter { $0.distance == best }
        return nearest.count == 1 ? nearest[0].key : nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}
