package import ArgumentParser
package import DNA
import DNAPostgres
import DNATLS
import Foundation
import Logging

// What the command-line tools share: the cluster secret, logging, where the store is,
// TLS options and addresses.

/// The cluster secret, from `DNA_CLUSTER_SECRET` (never from the command line, where `ps`
/// would show it).
package func clusterSecret() throws -> [UInt8] {
    guard let secret = ProcessInfo.processInfo.environment["DNA_CLUSTER_SECRET"], !secret.isEmpty else {
        throw ValidationError("set DNA_CLUSTER_SECRET to the cluster's shared secret (at least 16 bytes)")
    }
    guard secret.utf8.count >= 16 else { throw ValidationError("DNA_CLUSTER_SECRET must be at least 16 bytes") }
    return Array(secret.utf8)
}

package func bootstrapLogging(_ level: String) throws {
    guard let level = Logger.Level(rawValue: level) else {
        throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Where a command finds the cluster: the store and the cluster name, shared by the
/// commands that take them.
package struct StoreLocation: ParsableArguments {
    package init() {}

    @Option(
        help: """
            The store: postgres://USER@HOST:PORT/DB, or sqlite:PATH (shared by the nodes of one machine). \
            Default: $DNA_STORE, which keeps a password off the command line.
            """)
    package var store: String?

    @Option(help: "The cluster name.")
    package var cluster: String = "local"

    package mutating func validate() throws {
        if store == nil { store = ProcessInfo.processInfo.environment["DNA_STORE"] }
        guard let store, !store.isEmpty else { throw ValidationError("name the store with --store or DNA_STORE") }
    }
}

/// A store given as text, as `dna` takes it: `sqlite:PATH` (or a bare path) or `postgres://…`.
package enum StoreArgument {
    case sqlite(path: String)
    case postgres(url: String)

    package init(_ text: String) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else if text.hasPrefix("sqlite:") {
            self = .sqlite(path: String(text.dropFirst("sqlite:".count)))
        } else {
            self = .sqlite(path: text)
        }
    }

    package var choice: Node.StoreChoice { choice(synchronous: .normal) }

    /// `synchronous`: for an SQLite file, what an acknowledged write survives.
    package func choice(synchronous: SQLiteStore.Configuration.Synchronous) -> Node.StoreChoice {
        switch self {
        case .sqlite(let path): .sqlite(path: path, synchronous: synchronous)
        case .postgres(let url): .postgres(url: url)
        }
    }
}

/// `HOST:PORT` to listen on; unlike a peer's address, port 0 (pick a free one) is allowed.
package func listenAddress(_ text: String) throws -> PeerAddress {
    if text.hasSuffix(":0") {
        let host = String(text.dropLast(2))
        _ = try PeerAddress(parsing: host + ":1")  // validates the host part
        return PeerAddress(host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: 0)
    }
    return try PeerAddress(parsing: text)
}

/// Mutual TLS between nodes (and clients) from PEM files: all three, or none.
package struct TLSOptions: ParsableArguments {
    package init() {}

    @Option(help: "This node's (or client's) TLS certificate chain, PEM. With --tls-key and --tls-ca.")
    package var tlsCertificate: String?

    @Option(help: "The private key of --tls-certificate, PEM.")
    package var tlsKey: String?

    @Option(help: "The cluster's CA certificate(s), PEM: peers must present a certificate it signed.")
    package var tlsCa: String?

    package func configuration() throws -> (any TransportSecurity)? {
        switch (tlsCertificate, tlsKey, tlsCa) {
        case (nil, nil, nil):
            return nil
        case (let certificate?, let key?, let ca?):
            return try TransportTLSConfiguration.mutual(certificateChain: certificate, privateKey: key, trustRoots: ca)
        default:
            throw ValidationError("--tls-certificate, --tls-key and --tls-ca go together")
        }
    }
}

/// Runs `body` with the store `text` names (`postgres://…` or `sqlite:PATH`), which must
/// exist already; an SQLite file is opened shared, beside the nodes using it.
/// With `creating`, a missing SQLite file is made (`dna stream create` on a new store).
package func withExistingStore(
    _ text: String, creating: Bool = false, _ body: @escaping @Sendable (any ActorStore) async throws -> Void
) async throws {
    switch StoreArgument(text) {
    case .postgres(let url):
        try await PostgresStore(configuration: .init(url: url)).withRunning { store in try await body(store) }
    case .sqlite(let path):
        guard creating || FileManager.default.fileExists(atPath: path) else { throw ValidationError("no database at \(path)") }
        var configuration = SQLiteStore.Configuration(path: path)
        configuration.sharing = .shared
        let store = SQLiteStore(configuration: configuration)
        try await store.open()
        do {
            try await body(store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}

/// `text` left-aligned in `width` columns (at least one space after it).
package func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
