import Foundation
import KilnArtifacts
import KilnCore

/// A JUnit report that cannot be used: which file, and what is wrong.
public struct JUnitError: ExitStatusProviding, CustomStringConvertible, Sendable {
    public let message: String
    /// A missing or broken report means the tests did not report: the project's failure.
    public var exitStatus: KilnExit { .projectFailed }
    public var description: String { message }
}

/// Finds the reports the `build.junit` globs name, checks each is JUnit,
/// and merges them into one `<testsuites>` for `artifacts:reports:junit`.
public enum JUnitReports {
    public static func collect(
        globs: [String], in folder: String
    ) throws -> (files: [String], suites: [XMLElement], counts: TestCounts) {
        var files: [String] = []
        for pattern in globs {
            let matches = Glob.match(pattern, in: folder)
            guard !matches.isEmpty else {
                throw JUnitError(
                    message: "build.junit: '\(pattern)' matches no file in \(folder); did the tests write their report?"
                )
            }
            files += matches.filter { !files.contains($0) }
        }
        var suites: [XMLElement] = []
        var counts = TestCounts()
        for file in files {
            let path = (folder as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw JUnitError(message: "\(file): cannot be read")
            }
            let root: XMLElement
            do {
                root = try XMLReader.parse(Array(data))
            } catch {
                throw JUnitError(message: "\(file): not a JUnit report: \(error)")
            }
            let found: [XMLElement]
            switch root.name {
            case "testsuites": found = root.all("testsuite")
            case "testsuite": found = [root]
            default:
                throw JUnitError(
                    message:
                        """
                        \(file): not a JUnit report: the root element is <\(root.name)>, not <testsuites> or <testsuite>
                        """
                )
            }
            for suite in found {
                count(suite, into: &counts)
                suites.append(suite)
            }
        }
        return (files, suites, counts)
    }

    private static func count(_ suite: XMLElement, into counts: inout TestCounts) {
        for child in suite.children {
            switch child.name {
            case "testcase":
                counts.tests += 1
                if child["failure"] != nil {
                    counts.failures += 1
                } else if child["error"] != nil {
                    counts.errors += 1
                } else if child["skipped"] != nil {
                    counts.skipped += 1
                }
            case "testsuite":
                count(child, into: &counts)
            default:
                continue
            }
        }
    }

    /// One document with every suite, its totals on the root.
    public static func merged(_ suites: [XMLElement], counts: TestCounts) -> String {
        let root = XMLElement(
            name: "testsuites",
            attributes: [
                "tests": "\(counts.tests)", "failures": "\(counts.failures)", "errors": "\(counts.errors)",
                "skipped": "\(counts.skipped)",
            ],
            children: suites)
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + root.serialized()
    }
}

/// Glob patterns over a folder, as GitLab's `artifacts:paths` write them:
/// `*`, `?` and `[...]` within a name, `**` for any depth of folders.
public enum Glob {
    /// Matching files, relative to `folder`, sorted.
    public static func match(_ pattern: String, in folder: String) -> [String] {
        let segments = pattern.split(separator: "/").map(String.init)
        var results: [String] = []
        walk(segments[...], relative: "", folder: folder, into: &results)
        return Array(Set(results)).sorted()
    }

    private static func walk(
        _ segments: ArraySlice<String>, relative: String, folder: String, into results: inout [String]
    ) {
        let here = relative.isEmpty ? folder : (folder as NSString).appendingPathComponent(relative)
        guard let segment = segments.first else {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: here, isDirectory: &isFolder), !isFolder.boolValue {
                results.append(relative)
            }
            return
        }
        let rest = segments.dropFirst()
        if segment == "**" {
            walk(rest, relative: relative, folder: folder, into: &results)
            // Real folders only: following a symbolic link could loop forever.
            for name in entries(here) where isRealFolder((here as NSString).appendingPathComponent(name)) {
                walk(segments, relative: join(relative, name), folder: folder, into: &results)
            }
            return
        }
        let hasWildcard = segment.contains(where: { "*?[".contains($0) })
        if !hasWildcard {
            let next = join(relative, segment)
            if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(next)) {
                walk(rest, relative: next, folder: folder, into: &results)
            }
            return
        }
        for name in entries(here) where fnmatch(segment, name, FNM_PERIOD) == 0 {
            walk(rest, relative: join(relative, name), folder: folder, into: &results)
        }
    }

    private static func entries(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    private static func isRealFolder(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeDirectory
    }

    private static func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : "\(a)/\(b)" }
}
