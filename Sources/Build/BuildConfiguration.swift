import Foundation
import KilnCore

/// One command of `build.commands` or `build.test`: a shell line, or a
/// mapping with `run`, and optionally `name`, `env` and `timeout`.
public struct ProjectCommand: Sendable, Equatable {
    public var name: String
    public var run: String
    public var environment: [String: String]
    public var timeout: Seconds?
    /// Where it was written, for messages.
    public var location: String
}

/// What to hand to the bake: files and folders packed into a reproducible
/// tar.gz, or one file the build already made (a .deb, a tarball).
public enum PackageSpecification: Sendable, Equatable {
    case paths([String])
    case file(String)
}

/// The `build` section of kiln.yml.
public struct BuildConfiguration: Sendable, Equatable {
    public var application: String
    public var commands: [ProjectCommand]
    public var tests: [ProjectCommand]
    public var junit: [String]
    public var package: PackageSpecification
    public var location: String

    static let keys = ConfigSchema.build.keys
    /// A limit of 0 would stop every command at once.
    static let shortestTimeout = Seconds(1)

    /// Reads `build` (and the application's name, as `Settings.application` resolves it).
    public static func load(_ settings: Settings) throws -> BuildConfiguration {
        let file = settings.file
        guard let section = file.node("build") else {
            throw KilnError.badConfiguration(
                """
                \(file.path ?? "kiln.yml"): no 'build' section: \
                kiln-build needs build.commands or build.test, and build.package
                """
            )
        }
        let entries = try file.mapping(section, "build", allowed: keys)
        let defaultTimeout = try entries["timeout"].map {
            try file.value($0, "build.timeout", atLeast: shortestTimeout)
        }
        func commands(_ key: String) throws -> [ProjectCommand] {
            guard let node = entries[key] else { return [] }
            return try file.listOrOne(node, "build.\(key)").enumerated().map { index, item in
                let keyPath = "build.\(key)[\(index)]"
                if case .scalar(let line, _) = item {
                    return ProjectCommand(
                        name: "\(key) \(index + 1)", run: line, environment: [:], timeout: defaultTimeout,
                        location: file.location(item))
                }
                let fields = try file.mapping(item, keyPath, allowed: ConfigSchema.buildCommand.keys)
                guard let run = fields["run"] else { throw file.fail(item, keyPath, "a command needs 'run'") }
                return ProjectCommand(
                    name: try fields["name"].map { try file.scalar($0, "\(keyPath).name") } ?? "\(key) \(index + 1)",
                    run: try file.scalar(run, "\(keyPath).run"),
                    environment: try fields["env"].map { try file.stringMap($0, "\(keyPath).env") } ?? [:],
                    timeout: try fields["timeout"].map {
                        try file.value($0, "\(keyPath).timeout", atLeast: shortestTimeout)
                    }
                        ?? defaultTimeout,
                    location: file.location(item))
            }
        }
        let built = try commands("commands")
        let tests = try commands("test")
        guard !built.isEmpty || !tests.isEmpty else {
            throw file.fail(section, "build", "neither build.commands nor build.test is given")
        }
        let junit =
            try entries["junit"].map { node in
                try file.listOrOne(node, "build.junit").enumerated().map { try file.scalar($1, "build.junit[\($0)]") }
            } ?? []
        guard let packageNode = entries["package"] else {
            throw file.fail(
                section, "build.package",
                "missing: name the files to pack (package.paths) or the file to hand on (package.file)")
        }
        let packageFields = try file.mapping(
            packageNode, "build.package", allowed: ConfigSchema.build["package"]?.keys ?? [])
        let package: PackageSpecification
        switch (packageFields["paths"], packageFields["file"]) {
        case (let paths?, nil):
            let list = try file.listOrOne(paths, "build.package.paths").enumerated().map {
                try file.scalar($1, "build.package.paths[\($0)]")
            }
            guard !list.isEmpty else { throw file.fail(paths, "build.package.paths", "is empty") }
            package = .paths(list)
        case (nil, let single?):
            package = .file(try file.scalar(single, "build.package.file"))
        default:
            throw file.fail(packageNode, "build.package", "give exactly one of paths or file")
        }
        guard let application = try settings.application() else {
            throw KilnError.badConfiguration(
                """
                application is not set; give it as KILN_APPLICATION, \
                or 'application' in kiln.yml (in a job, CI_PROJECT_NAME names it)
                """
            )
        }
        return BuildConfiguration(
            application: application.value, commands: built, tests: tests, junit: junit, package: package,
            location: file.location(section))
    }
}
