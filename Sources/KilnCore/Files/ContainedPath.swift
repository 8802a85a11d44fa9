import Foundation

/// A path that an artifact or kiln.yml names (the build's artifact, the
/// rendered user data, a template, the playbooks): resolved as the system
/// would open it, symbolic links included, and refused unless it lies
/// inside the folders it may name (the project folder, the artifacts
/// folder). An artifact saying `../../etc/passwd`, or a symbolic link to it,
/// is a bad artifact (65); kiln.yml saying so is a bad configuration (78).
public enum ContainedPath {
    /// Where the path was written, for the error.
    public enum Origin: Sendable {
        /// `field` of the artifact `file` (exit 65).
        case artifact(file: String, field: String)
        /// `key` of kiln.yml, written at `location` (`kiln.yml:12`) (exit 78).
        case configuration(location: String, key: String)
    }

    /// The real path of `given` (relative to `base` unless absolute), when
    /// it is inside one of `roots`. A path that does not exist yet is
    /// checked as far as it exists.
    public static func resolve(
        _ given: String, relativeTo base: String, within roots: [String], origin: Origin
    ) throws -> String {
        let joined = given.hasPrefix("/") ? given : (base as NSString).appendingPathComponent(given)
        let real = realPath(joined)
        let realRoots = roots.map(realPath)
        guard realRoots.contains(where: { real == $0 || real.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else {
            let inside = roots.count == 1 ? "inside \(roots[0])" : "inside \(roots.joined(separator: " or "))"
            let why = real == (joined as NSString).standardizingPath ? "" : " (it resolves to \(real))"
            switch origin {
            case .artifact(let file, let field):
                throw KilnError.badArtifact(
                    "\(file): field '\(field)': \(Untrusted.quoted(given)) is not \(inside)\(why);"
                        + " an artifact names files of the project only"
                )
            case .configuration(let location, let key):
                throw KilnError.badConfiguration(
                    "\(location): \(key): \(Untrusted.quoted(given)) is not \(inside)\(why);"
                        + " name a path in the repository"
                )
            }
        }
        return real
    }

    /// `realpath(3)` of the longest part of `path` that exists, with the
    /// rest appended, so `..` and symbolic links are both followed.
    static func realPath(_ path: String) -> String {
        var head = (path as NSString).standardizingPath
        var tail: [String] = []
        while true {
            if let resolved = realpath(head, nil) {
                defer { free(resolved) }
                let real = String(cString: resolved)
                return tail.isEmpty
                    ? real
                    : ((real as NSString).appendingPathComponent(tail.reversed().joined(separator: "/")) as NSString)
                        .standardizingPath
            }
            let parent = (head as NSString).deletingLastPathComponent
            if parent == head || parent.isEmpty { return (path as NSString).standardizingPath }
            tail.append((head as NSString).lastPathComponent)
            head = parent
        }
    }
}
