// swift-tools-version:6.0
//
// libFuzzer targets for DNA's parsers of untrusted bytes. Not part of the main package:
// build and run them with `scripts/fuzz` (see Fuzz/README.md).
import PackageDescription

// A package that depends on another by path names it by its folder's name, which is that
// of the clone (`main` here, something else in another checkout).
let parentFolder = String(#filePath.split(separator: "/").dropLast(2).last ?? "main")

let fuzzTarget = { (name: String) in
    Target.executableTarget(
        name: name,
        dependencies: [
            "FuzzSupport",
            .product(name: "DNA", package: parentFolder),
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "dna-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzTarget("FuzzFrameDecoder"),
        fuzzTarget("FuzzHandshake"),
        fuzzTarget("FuzzCompactDecoder"),
    ],
    swiftLanguageModes: [.v6]
)
