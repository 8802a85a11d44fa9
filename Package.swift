// swift-tools-version:6.0
import PackageDescription

// Kiln: one small executable per pipeline stage, on shared libraries. The
// package reads as the architecture (docs/architecture.md):
//
//   C libraries     CLibGit2, CCurl, COpenSSL (Debian's -dev packages), CKilnLinux (glibc's _GNU_SOURCE calls)
//   foundation      KilnCore (artifact store, job, log, settings, runner, clock, errors, the stage context)
//   transports      KilnHTTP (libcurl), KilnGit (libgit2), KilnAWS (SigV4, credentials, AWS APIs)
//   contracts       KilnArtifacts: the artifacts the stages hand on, Terraform's outputs, the kiln: tags
//   stages          Checkout, Build, Bake, UserData, Rotate: each reads artifacts, never another stage
//   command lines   KilnCLI (every stage), KilnAWSCLI (the stages that talk to AWS: --check-aws)
//   executables     kiln-checkout, kiln-build, kiln-bake, kiln-userdata, kiln-rotate: argument parsing only
//
// Linux only (Debian 12): the process runner uses Linux's posix_spawn and
// pipe2, and the stand-ins use Linux namespaces. There is no `platforms:`
// entry for Linux in SwiftPM; nothing here is built for Apple platforms.

let stageExecutables = ["kiln-checkout", "kiln-build", "kiln-bake", "kiln-userdata", "kiln-rotate"]

/// Stage libraries meet only through KilnArtifacts; `scripts/check-architecture`
/// fails when one imports another.
let stageLibraries = ["Checkout", "Build", "Bake", "UserData", "Rotate"]

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "Kiln",
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
        // glibc's calls that Swift's Glibc module hides (they need _GNU_SOURCE).
        .target(name: "CKilnLinux"),

        .target(name: "KilnCore", dependencies: ["COpenSSL", "CKilnLinux", .product(name: "Yams", package: "Yams")]),
        .target(name: "KilnHTTP", dependencies: ["KilnCore", "CCurl"]),
        .target(name: "KilnGit", dependencies: ["KilnCore", "CLibGit2"]),
        .target(name: "KilnAWS", dependencies: ["KilnCore", "KilnHTTP"]),
        .target(name: "KilnArtifacts", dependencies: ["KilnCore"]),

        .target(name: "Checkout", dependencies: ["KilnCore", "KilnArtifacts", "KilnGit", "KilnHTTP"]),
        .target(name: "Build", dependencies: ["KilnCore", "KilnArtifacts"]),
        .target(name: "Bake", dependencies: ["KilnCore", "KilnArtifacts", "KilnAWS"]),
        .target(name: "UserData", dependencies: ["KilnCore", "KilnArtifacts"]),
        .target(name: "Rotate", dependencies: ["KilnCore", "KilnArtifacts", "KilnAWS", "KilnHTTP"]),

        .target(name: "KilnCLI", dependencies: ["KilnCore", "KilnHTTP", argumentParser]),
        .target(name: "KilnAWSCLI", dependencies: ["KilnCLI", "KilnCore", "KilnHTTP", "KilnAWS", argumentParser]),
    ]
        + [
            .executableTarget(
                name: "kiln-checkout",
                dependencies: ["KilnCLI", "Checkout", "KilnArtifacts", "KilnCore", "KilnHTTP", argumentParser]),
            .executableTarget(name: "kiln-build", dependencies: ["KilnCLI", "Build", "KilnCore", argumentParser]),
            .executableTarget(
                name: "kiln-bake",
                dependencies: [
                    "KilnAWSCLI", "KilnCLI", "Bake", "KilnArtifacts", "KilnAWS", "KilnCore", argumentParser,
                ]),
            .executableTarget(
                name: "kiln-userdata", dependencies: ["KilnCLI", "UserData", "KilnCore", argumentParser]),
            .executableTarget(
                name: "kiln-rotate",
                dependencies: [
                    "KilnAWSCLI", "KilnCLI", "Rotate", "KilnArtifacts", "KilnAWS", "KilnCore", argumentParser,
                ]),
        ]
        + [
            .executableTarget(
                name: "kiln-aws-bench", dependencies: ["KilnAWS", "KilnHTTP", "KilnCore", argumentParser]),
            .target(name: "KilnTestSupport", dependencies: ["KilnCore", "KilnHTTP"], path: "Tests/KilnTestSupport"),
            .testTarget(name: "KilnCoreTests", dependencies: ["KilnCore", "KilnTestSupport"]),
            .testTarget(name: "KilnHTTPTests", dependencies: ["KilnHTTP", "KilnTestSupport"]),
            .testTarget(name: "KilnGitTests", dependencies: ["KilnGit"]),
            .testTarget(name: "KilnArtifactsTests", dependencies: ["KilnArtifacts", "KilnCore"]),
            .testTarget(name: "CheckoutTests", dependencies: ["Checkout", "KilnArtifacts", "KilnTestSupport"]),
            .testTarget(name: "BuildTests", dependencies: ["Build", "KilnArtifacts", "KilnTestSupport"]),
            .testTarget(
                name: "BakeTests",
                dependencies: ["Bake", "Build", "KilnArtifacts", "KilnAWS", "KilnHTTP", "KilnTestSupport"]),
            .testTarget(name: "UserDataTests", dependencies: ["UserData", "KilnArtifacts", "KilnTestSupport"]),
            .testTarget(
                name: "RotateTests",
                dependencies: ["Rotate", "KilnArtifacts", "KilnAWS", "KilnHTTP", "KilnTestSupport"]),
            .testTarget(name: "KilnAWSTests", dependencies: ["KilnAWS", "KilnTestSupport"]),
            .testTarget(
                name: "KilnExecutableTests",
                dependencies: ["KilnCore", "KilnArtifacts", "KilnHTTP", "KilnTestSupport"]
                    + stageExecutables.map { .target(name: $0) }
            ),
            .testTarget(name: "StandInTests", dependencies: ["KilnHTTP", "KilnTestSupport"]),
        ],
    swiftLanguageModes: [.v6]
)
