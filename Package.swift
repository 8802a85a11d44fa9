// swift-tools-version:6.0
import PackageDescription

// Kiln: one small executable per pipeline stage, on shared libraries.
// The layout follows ../shared/DESIGN.md: C libraries enter as system library
// targets (module map + shim), the logic lives in libraries, executables only
// parse arguments.

let stageExecutables = ["kiln-checkout", "kiln-build", "kiln-bake", "kiln-userdata", "kiln-rotate"]

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v13)],
    products: stageExecutables.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C libraries from Debian's -dev packages, found through pkg-config.
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(name: "KilnCore", dependencies: ["COpenSSL", .product(name: "Yams", package: "Yams")]),
        .target(name: "KilnHTTP", dependencies: ["KilnCore", "CCurl"]),
        .target(name: "KilnGit", dependencies: ["KilnCore", "CLibGit2"]),
        .target(name: "KilnAWS", dependencies: ["KilnCore", "KilnHTTP"]),
        .target(name: "Checkout", dependencies: ["KilnCore", "KilnGit", "KilnHTTP"]),
        .target(name: "Build", dependencies: ["KilnCore", "Checkout"]),
        .target(name: "Bake", dependencies: ["KilnCore", "KilnAWS", "KilnHTTP", "Build"]),
        .target(name: "UserData", dependencies: ["KilnCore", "Bake", .product(name: "Yams", package: "Yams")]),
        .target(name: "Rotate", dependencies: ["KilnCore", "KilnAWS", "KilnHTTP", "Bake", "UserData"]),
        .target(name: "KilnCLI", dependencies: [
            "KilnCore", "KilnGit", "KilnHTTP", "KilnAWS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
    ]
    + [
        .executableTarget(name: "kiln-checkout", dependencies: ["KilnCLI", "Checkout"]),
        .executableTarget(name: "kiln-build", dependencies: ["KilnCLI", "Build"]),
        .executableTarget(name: "kiln-bake", dependencies: ["KilnCLI", "Bake"]),
        .executableTarget(name: "kiln-userdata", dependencies: ["KilnCLI", "UserData"]),
        .executableTarget(name: "kiln-rotate", dependencies: ["KilnCLI", "Rotate", "UserData"]),
    ]
    + [
        .executableTarget(name: "kiln-aws-bench", dependencies: ["KilnAWS", "KilnHTTP", "KilnCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(name: "KilnTestSupport", dependencies: ["KilnCore", "KilnHTTP"], path: "Tests/KilnTestSupport"),
        .testTarget(name: "KilnCoreTests", dependencies: ["KilnCore", "KilnTestSupport"]),
        .testTarget(name: "KilnHTTPTests", dependencies: ["KilnHTTP", "KilnTestSupport"]),
        .testTarget(name: "KilnGitTests", dependencies: ["KilnGit"]),
        .testTarget(name: "CheckoutTests", dependencies: ["Checkout", "KilnTestSupport"]),
        .testTarget(name: "BuildTests", dependencies: ["Build", "KilnTestSupport"]),
        .testTarget(name: "BakeTests", dependencies: ["Bake", "Build", "KilnAWS", "KilnHTTP", "KilnTestSupport"]),
        .testTarget(name: "UserDataTests", dependencies: ["UserData", "Bake", "KilnTestSupport"]),
        .testTarget(name: "RotateTests", dependencies: ["Rotate", "Bake", "UserData", "KilnAWS", "KilnHTTP", "KilnTestSupport"]),
        .testTarget(name: "KilnAWSTests", dependencies: ["KilnAWS", "KilnTestSupport"]),
        .testTarget(
            name: "KilnExecutableTests",
            dependencies: ["KilnCore", "KilnTestSupport"] + stageExecutables.map { .target(name: $0) }
        ),
        .testTarget(name: "StandInTests", dependencies: ["KilnHTTP", "KilnTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
