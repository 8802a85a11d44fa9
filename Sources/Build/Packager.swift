import Foundation
import KilnArtifacts
import KilnCore

/// Packs the application reproducibly: the same files give the same bytes.
/// GNU tar with sorted names, one fixed time (the commit's, or
/// `SOURCE_DATE_EPOCH`), owner and group 0, modes reduced to 644/755 (no
/// setuid, setgid or sticky bit), no
/// extended attributes; gzip without a name or time in its header.
public struct Packager {
    public let runner: ProcessRunner
    public let projectDirectory: String
    public let artifactsDirectory: String
    /// tar's environment: the job's without its secrets (`JobContext.environmentForTools`).
    public let environment: [String: String]

    public init(
        runner: ProcessRunner, projectDirectory: String, artifactsDirectory: String, environment: [String: String]
    ) {
        self.runner = runner
        self.projectDirectory = projectDirectory
        self.artifactsDirectory = artifactsDirectory
        self.environment = environment
    }

    public func package(
        _ specification: PackageSpecification, name: String, time: Int, location: String
    ) throws -> ApplicationArtifact {
        switch specification {
        case .file(let file):
            let path = try contained(file, key: "build.package.file", location: location)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue else {
                throw KilnError(
                    .projectFailed, "build.package.file (\(location)): \(file) is not a file after the build")
            }
            return try describe(path, kind: .file)
        case .paths(let paths):
            for path in paths { _ = try contained(path, key: "build.package.paths", location: location) }
            for path in paths where !FileManager.default.fileExists(atPath: absolute(path)) {
                throw KilnError(
                    .projectFailed, "build.package.paths (\(location)): \(path) does not exist after the build")
            }
            try FileManager.default.createDirectory(atPath: artifactsDirectory, withIntermediateDirectories: true)
            let target = (artifactsDirectory as NSString).appendingPathComponent(name)
            let partial = target + ".partial"
            defer { try? FileManager.default.removeItem(atPath: partial) }
            let members = paths.map { $0.hasPrefix("/") ? $0 : "./" + $0.trimmingSuffix("/") }
            try runner.check(
                Command(
                    "tar",
                    [
                        "--create", "--file=\(partial)", "--use-compress-program=gzip -n -6",
                        "--format=gnu", "--sort=name", "--mtime=@\(time)", "--owner=0", "--group=0", "--numeric-owner",
                        // chmod's symbolic modes: readable by all, writable by the owner, and no
                        // setuid, setgid or sticky bit (a setgid job folder passes its bit to every
                        // folder the build makes), so the package holds modes 644 and 755 only.
                        "--mode=a+rX,u+w,go-w,u-s,g-s,o-t", "--no-acls", "--no-xattrs", "--no-selinux",
                        "--exclude=./\(relative(artifactsDirectory))",
                        "--directory=\(projectDirectory)", "--",
                    ] + members, environment: environment),
                what: "packing \(name)", failure: .projectFailed)
            guard rename(partial, target) == 0 else { throw SystemCallError("rename \(partial)", errno: errno) }
            return try describe(target, kind: .tarGz)
        }
    }

    /// kiln.yml names what to pack: only the project's own files (issue 13, item 2).
    private func contained(_ path: String, key: String, location: String) throws -> String {
        try ContainedPath.resolve(
            path, relativeTo: projectDirectory, within: [projectDirectory],
            origin: .configuration(location: location, key: key))
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (projectDirectory as NSString).appendingPathComponent(path)
    }

    private func relative(_ path: String) -> String {
        let prefix = projectDirectory.hasSuffix("/") ? projectDirectory : projectDirectory + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    private func describe(_ path: String, kind: ApplicationArtifact.Kind) throws -> ApplicationArtifact {
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        return ApplicationArtifact(
            path: relative(path), size: size, sha256: try SHA256Digest.hex(ofFileAt: path), kind: kind)
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) && text.count > suffix.count { text.removeLast(suffix.count) }
        return text
    }
}
