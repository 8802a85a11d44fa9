import Foundation

/// Where the repository, its Python stand-ins and the built executables are,
/// as seen from a test.
public enum TestPaths {
    /// The package root: this file is Tests/KilnTestSupport/TestPaths.swift.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The Python of the virtual environment `scripts/setup` makes
    /// (`KILN_VENV` names another).
    public static var python: String {
        let venv = ProcessInfo.processInfo.environment["KILN_VENV"] ?? "\(repositoryRoot)/.venv"
        return "\(venv)/bin/python"
    }

    /// The folder holding the built executables: the test bundle sits beside
    /// them. `KILN_TEST_PRODUCTS` names another (an installed Kiln, such as
    /// `.kiln-runtime/bin`, to run the built-binary tests against it).
    public static let productsDirectory: String = {
        if let other = ProcessInfo.processInfo.environment["KILN_TEST_PRODUCTS"], !other.isEmpty { return other }
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // Bundles on some platforms nest the binary (X.xctest/Contents/MacOS/X).
        while url.path.contains(".xctest") { url.deleteLastPathComponent() }
        return url.path
    }()

    public static func product(_ name: String) -> String { "\(productsDirectory)/\(name)" }
}

/// A folder for one test, removed when the value goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "kiln-test") {
        let template = NSTemporaryDirectory() + "\(label).XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { fatalError("mkdtemp failed: \(errno)") }
        path = String(cString: made)
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
