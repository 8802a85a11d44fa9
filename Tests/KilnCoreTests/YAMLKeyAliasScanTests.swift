import Foundation
import Testing

@testable import KilnCore

/// The scan that refuses an alias used as a key before Yams parses the
/// text: it finds each form, and passes every other use of `*` (globs in
/// quotes, in block scalars, inside plain scalars, comments).
@Suite struct YAMLKeyAliasScanTests {
    @Test(arguments: [
        ("a: &x 1\nmap:\n  ? *x\n  : y\n", 3), ("a: &x 1\nmap:\n  *x : y\n", 3), ("a: &x 1\nm: {*x : y}\n", 2),
        ("a: &x 1\n*x: y\n", 2),
    ])
    func anAliasAsAKeyIsFound(text: String, line: Int) {
        #expect(YAMLKeyAliasScan.firstKeyAlias(in: text)?.line == line)
    }

    @Test(arguments: [
        "build:\n  junit: 'reports/**/*.xml'\n", "build:\n  junit: \"**/*.xml\"\n",
        "build:\n  test: |\n    *x: y\n    ls *.txt\n  package: {paths: [dist/*]}\n",
        "build:\n  test: make && make test # *x: y\n", "a: &x [1]\nb: *x\nc: [*x, *x]\n",
        "run: echo a*b: c\n", "s: 'it''s *x: y'\n", "d: \"multi\n  *x: still quoted\"\n",
    ])
    func otherStarsPass(text: String) {
        #expect(YAMLKeyAliasScan.firstKeyAlias(in: text) == nil, "\(text)")
    }
}
