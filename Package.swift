// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dna-swift",
    platforms: [.macOS(.v15)],
    products: [
        // The actor API, the runtime, the embedded SQLite store and the cluster (plain TCP).
        .library(name: "DNA", targets: ["DNA"]),
        // The PostgreSQL store, for clusters of several machines: `.postgres(url:)`.
        .library(name: "DNAPostgres", targets: ["DNAPostgres"]),
        // Mutual TLS between nodes: `.mutualTLS(certificateChain:privateKey:trustRoots:)`.
        .library(name: "DNATLS", targets: ["DNATLS"]),
        // Operations over HTTP: Prometheus metrics (swift-prometheus) and health probes.
        .library(name: "DNAPrometheus", targets: ["DNAPrometheus"]),
        // For writing a store engine: `@_spi(StoreEngine) import DNAStore` adds the rules
        // every engine applies (ClaimDecision, the Stream*Rule enums) to what `DNA` exports.
        .library(name: "DNAStore", targets: ["DNAStore"]),
        // For users' tests: the in-memory store, a test clock, a cluster in one process, a
        // private PostgreSQL server, and the deterministic cluster simulation.
        .library(name: "DNATesting", targets: ["DNATesting"]),
        // The operator's command: nodes, status, drains, rebalancing, streams.
        .executable(name: "dna", targets: ["DNACommand"]),
        // Benchmarks against raw engines in the same run, with their baselines and demos.
        .executable(name: "dna-bench", targets: ["DNABench"]),
        // The deterministic cluster simulation over many seeds.
        .executable(name: "dna-simulate", targets: ["DNASimulate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // `swift package generate-documentation`: the DocC catalogs of the products.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The system SQLite (libsqlite3-dev), used directly through its C API.
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // Layer 3: the store protocol, its model, the registration rule, and the SQLite engine.
        .target(
            name: "DNAStore",
            dependencies: [
                "CSQLite",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Layer 4: node-to-node frames, the authenticated handshake and connections (SwiftNIO).
        .target(
            name: "DNATransport",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Layers 1-2 and the cluster: the actor API, the runtime, routing between nodes.
        .target(
            name: "DNA",
            dependencies: [
                "DNAStore",
                "DNATransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The PostgreSQL engine of the store protocol (postgres-nio), plugged into the node
        // by an extension of `Node.StoreChoice`.
        .target(
            name: "DNAPostgres",
            dependencies: [
                "DNA",
                "DNAStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // TLS under the handshake (swift-nio-ssl), plugged in as a `TransportSecurity`.
        .target(
            name: "DNATLS",
            dependencies: [
                "DNATransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "DNATesting",
            dependencies: [
                "DNA",
                "DNAStore",
                "DNATransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // malloc's count of heap in use, for `dna-bench --scenario memory`.
        .target(name: "CHeapInfo"),
        // The built-in example actors (the KV actor that `dna-bench` drives).
        .target(name: "DNAExamples", dependencies: ["DNA"]),
        // The metrics and health endpoint (NIO HTTP/1.1), a `Service` beside the node.
        .target(
            name: "DNAPrometheus",
            dependencies: [
                "DNA",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the command-line tools share: the store argument, the secret, logging, TLS,
        // and `dna node` (which `dna-bench` also runs for its cluster scenarios).
        .target(
            name: "DNACommandSupport",
            dependencies: [
                "DNA",
                "DNAPostgres",
                "DNATLS",
                "DNAExamples",
                "DNAPrometheus",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Layer 5: the `dna` command an operator deploys (no test servers, no baselines).
        .executableTarget(
            name: "DNACommand",
            dependencies: [
                "DNA",
                "DNAPostgres",
                "DNATLS",
                "DNAExamples",
                "DNATransport",
                "DNAPrometheus",
                "DNACommandSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // `dna-bench`: every benchmark with its baselines (raw SQLite, PostgreSQL, the transport).
        .executableTarget(
            name: "DNABench",
            dependencies: [
                "DNA",
                "DNAPostgres",
                "DNATesting",
                "DNAExamples",
                "DNATransport",
                "DNACommandSupport",
                "CHeapInfo",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `dna-simulate`: the cluster simulation of `DNATesting` from the command line.
        .executableTarget(
            name: "DNASimulate",
            dependencies: [
                "DNA",
                "DNATesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The trait integration suites share (one at a time, beside the unit tests).
        .target(name: "DNATestSupport", path: "Tests/DNATestSupport"),
        // Pure machines, planners, codecs and the model simulation: no I/O, in parallel.
        .testTarget(
            name: "DNAUnitTests",
            dependencies: [
                "DNA", "DNAStore", "DNATransport", "DNATesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Integration: SQLite files, PostgreSQL servers, sockets, processes, real time.
        .testTarget(
            name: "DNAStoreTests",
            dependencies: [
                "DNAStore", "DNAPostgres", "DNATesting", "DNATestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]),
        // Certificates for the TLS tests (test-only; no product exposes it).
        .target(name: "DNATestCertificates"),
        .testTarget(
            name: "DNATransportTests",
            dependencies: [
                "DNATransport", "DNATLS", "DNATestCertificates", "DNATestSupport",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "DNATests",
            dependencies: [
                "DNA", "DNAExamples", "DNAPostgres", "DNATLS", "DNATesting", "DNACommand", "DNABench", "DNASimulate", "DNATestCertificates",
                "DNAPrometheus", "DNATestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility"),
            .enableUpcomingFeature("InternalImportsByDefault"),
        ]
}
