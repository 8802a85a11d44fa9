import Foundation
import KilnCore

/// The installed Packer's version (`packer version`: `Packer v1.6.6`),
/// read once per bake: it decides whether plugins are installed with
/// `packer init`.
public struct PackerVersion: Sendable, Comparable, CustomStringConvertible {
    public var parts: [Int]

    public init(_ parts: [Int]) { self.parts = parts }

    /// `packer init` and the `required_plugins` block came with Packer 1.7.0
    /// (Packer's "init Command" page, docs v1.7.x); Packer 1.6.6 has neither
    /// and builds the amazon builder and the ansible provisioner in.
    public static let firstWithInit = PackerVersion([1, 7])

    public var supportsInit: Bool { self >= Self.firstWithInit }

    public var description: String { parts.map(String.init).joined(separator: ".") }

    public static func < (a: PackerVersion, b: PackerVersion) -> Bool {
        let count = max(a.parts.count, b.parts.count)
        let left = a.parts + Array(repeating: 0, count: count - a.parts.count)
        let right = b.parts + Array(repeating: 0, count: count - b.parts.count)
        return left.lexicographicallyPrecedes(right)
    }

    /// Runs `packer version` and reads its number.
    public static func detect(
        packer: String, runner: ProcessRunner, environment: [String: String]
    ) throws
        -> PackerVersion
    {
        let result = try runner.run(Command(packer, ["version"], environment: environment), output: .capture)
        let text = String(decoding: result.standardOutput, as: UTF8.self)
        guard result.termination.succeeded, let version = parse(text) else {
            throw KilnError(
                .badConfiguration,
                "\(packer) version: not a Packer I understand (\(result.termination)): \(text.prefix(200))")
        }
        return version
    }

    /// `Packer v1.10.0` (and 1.7+'s "Your version of Packer is out of date" lines after it).
    public static func parse(_ text: String) -> PackerVersion? {
        guard
            let word = text.split(whereSeparator: \.isWhitespace).first(where: {
                $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true
            })
        else { return nil }
        return PackerVersion(word.dropFirst().split(separator: ".").map { Int($0.prefix(while: \.isNumber)) ?? 0 })
    }
}

/// How a bake gets its Packer plugins, decided once from the Packer version
/// and the template's files: `packer init` whenever the template declares
/// `required_plugins` and Packer has `init` (1.7+); nothing on Packer 1.6.6,
/// whose plugins are built in. Kiln's own `plugins.pkr.hcl` (beside Kiln's
/// one-file template) is one more file of the template on 1.7+, under the
/// same rule.
public struct PackerPlugins: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// Packer before 1.7: everything built in, no `init`.
        case builtIn
        /// Packer 1.7+ and a template without `required_plugins`.
        case noneDeclared
        /// `packer init` on the template: these files declare `required_plugins`.
        case initialise(declaredIn: [String])
    }

    public var step: Step
    /// `PACKER_PLUGIN_PATH` as Packer gets it (absolute), or nil for Packer's default.
    public var pluginPath: String?

    /// Decides the step; a template that declares `required_plugins` for a
    /// Packer without `init` is 78 before anything is launched (Packer 1.6.6
    /// would stop at "Blocks of type required_plugins are not expected here").
    public static func plan(
        version: PackerVersion, packer: String, files: [String], pluginPath: String?, projectDirectory: String
    ) throws -> PackerPlugins {
        let declaring = try files.filter(declaresRequiredPlugins(file:))
        guard version.supportsInit else {
            if let file = declaring.first {
                throw KilnError.badConfiguration(
                    """
                    the Packer template's \(BakeKey.relative(file, to: projectDirectory)) declares required_plugins, \
                    which Packer \(version) (\(packer)) does not know: it needs Packer \
                    \(PackerVersion.firstWithInit) or later (bake.packer, --packer, KILN_PACKER), \
                    or a template without the packer { required_plugins } block
                    """
                )
            }
            return PackerPlugins(step: .builtIn, pluginPath: pluginPath)
        }
        return PackerPlugins(
            step: declaring.isEmpty ? .noneDeclared : .initialise(declaredIn: declaring), pluginPath: pluginPath)
    }

    /// `PACKER_PLUGIN_PATH` from the job, each of its folders made absolute
    /// against the project folder: GitLab's `cache:` paths are relative to
    /// the project, while Packer runs in the template's folder.
    public static func pluginPath(job value: String?, projectDirectory: String) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value.split(separator: ":", omittingEmptySubsequences: true).map { part in
            part.hasPrefix("/") ? String(part) : (projectDirectory as NSString).appendingPathComponent(String(part))
        }.joined(separator: ":")
    }

    /// The log line that says which path the bake took.
    public func describe(version: PackerVersion, projectDirectory: String) -> String {
        let location =
            pluginPath.map { "PACKER_PLUGIN_PATH=\($0)" }
            ?? "Packer's default plugin folder ($HOME/.config/packer/plugins; set PACKER_PLUGIN_PATH to cache it)"
        switch step {
        case .builtIn:
            return "packer \(version): plugins built in (before \(PackerVersion.firstWithInit)), no packer init"
        case .noneDeclared:
            return
                "packer \(version): the template declares no required_plugins, no packer init; plugins in \(location)"
        case .initialise(let files):
            let named = files.map { BakeKey.relative($0, to: projectDirectory) }.joined(separator: ", ")
            return "packer \(version): packer init (required_plugins in \(named)); plugins in \(location)"
        }
    }

    /// Whether one file declares `packer { required_plugins { ... } }`
    /// (Packer's "Specifying plugin requirements"; in a `.pkr.json` file the
    /// same as a `packer` object holding `required_plugins`). A legacy JSON
    /// template has no such block.
    public static func declaresRequiredPlugins(file: String) throws -> Bool {
        if file.hasSuffix(".pkrvars.hcl") || file.hasSuffix(".pkrvars.json") { return false }
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        if file.hasSuffix(".json") {
            guard file.hasSuffix(".pkr.json"), let object = try? JSONSerialization.jsonObject(with: data) else {
                return false
            }
            func holds(_ value: Any?) -> Bool {
                if let block = value as? [String: Any] { return block["required_plugins"] != nil }
                if let blocks = value as? [Any] { return blocks.contains(where: holds) }
                return false
            }
            return holds((object as? [String: Any])?["packer"])
        }
        return declaresRequiredPlugins(hcl: String(decoding: data, as: UTF8.self))
    }

    /// A top-level `packer` block with a `required_plugins` block in it.
    public static func declaresRequiredPlugins(hcl text: String) -> Bool {
        var scanner = HCLScanner(text)
        var depth = 0
        var words: [String] = []
        var inPacker = false
        while let token = scanner.next() {
            switch token {
            case .open:
                if depth == 0 { inPacker = words == ["packer"] }
                if depth == 1, inPacker, words == ["required_plugins"] { return true }
                depth += 1
                words = []
            case .close:
                depth -= 1
                if depth == 0 { inPacker = false }
                words = []
            case .word(let word):
                words.append(word)
            case .string(let text):
                words.append(text)
            case .equals, .newline:
                words = []
            }
        }
        return false
    }
}
