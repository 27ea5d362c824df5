public import DNAStore
import Foundation
public import Logging
public import NIOSSL
public import PostgresNIO

extension PostgresStore {
    /// How a ``PostgresStore`` reaches its database, and how hard it uses it.
    public struct Configuration: Sendable {
        /// Host name or IP address of the server.
        public var host: String
        /// TCP port of the server. Default 5432.
        public var port: Int = 5432
        /// The user to connect as.
        public var username: String
        /// `nil` when the URL has none. Never logged and never put into an error message.
        public var password: String?
        /// The name of the database.
        public var database: String
        /// Whether to talk TLS to the server, from the URL's `sslmode` (`disable`, the
        /// default here; `prefer`; `require`; `verify-ca` and `verify-full` are taken as
        /// `require` with certificate verification).
        public var tls: TLSMode = .disable
        /// The TLS settings used when ``tls`` is `prefer` or `require` (swift-nio-ssl's):
        /// trust roots of a private CA, a client certificate, the lowest TLS version. The
        /// default verifies the server's certificate against the system's trust roots.
        public var tlsConfiguration: TLSConfiguration = .makeClientConfiguration()
        /// The connection pool's settings, postgres-nio's own: `maximumConnections`
        /// (default 8 here: commits of different actors run concurrently, one statement per
        /// connection), `minimumConnections`, `connectTimeout` (10 s), `connectionIdleTimeout`,
        /// `keepAliveBehavior`, `tlsServerName`. Its `additionalStartupParameters` are sent
        /// with the session settings the store needs (the timeouts below, TCP keepalives),
        /// which take precedence.
        public var pool: PostgresClient.Configuration.Options = Self.defaultPool

        /// The pool's maximum connections.
        @available(*, deprecated, renamed: "pool.maximumConnections")
        public var maximumConnections: Int {
            get { pool.maximumConnections }
            set { pool.maximumConnections = newValue }
        }

        /// How long opening one connection may take.
        @available(*, deprecated, renamed: "pool.connectTimeout")
        public var connectTimeout: Duration {
            get { pool.connectTimeout }
            set { pool.connectTimeout = newValue }
        }

        private static var defaultPool: PostgresClient.Configuration.Options {
            var options = PostgresClient.Configuration.Options()
            options.maximumConnections = 8
            options.connectTimeout = .seconds(10)
            return options
        }
        /// How long an operation waits for a connection (all busy, or the server gone)
        /// before failing with `StoreError.Code.unavailable`; it then sends nothing, even on
        /// a connection granted afterwards. Default 10 s.
        public var leaseTimeout: Duration = .seconds(10)
        /// How long one operation (a connection and its statements) may take in all before
        /// it fails, whatever the driver is waiting for: `StoreError.Code.unavailable` if
        /// it had no connection yet (nothing is sent); past that, a commit fails with
        /// `StoreError.Code.outcomeUnknown` (it may have been applied). Default 20 s.
        public var operationTimeout: Duration = .seconds(20)
        /// How long the server lets a session sit idle inside a transaction before it ends
        /// the session (rolling the transaction back): a node paused or cut off in the middle
        /// of a commit holds its actor's row lock at most this long, so it delays the takeover
        /// of its names by at most `failureTimeout` + this. PostgreSQL's
        /// `idle_in_transaction_session_timeout`. Default 2 s.
        public var transactionIdleTimeout: Duration = .seconds(2)
        /// How long a statement waits for a row lock before it fails (retryably): a claim of
        /// a name whose owner is stuck in a commit gives up and frees its connection instead
        /// of blocking it, so claims cannot starve the node's own heartbeats of connections.
        /// PostgreSQL's `lock_timeout`. Default 2 s.
        public var lockTimeout: Duration = .seconds(2)
        /// The longest one statement may run on the server. PostgreSQL's `statement_timeout`.
        /// Default 10 s.
        public var statementTimeout: Duration = .seconds(10)
        /// The most storage operations that pipelined batches of one actor are merged into
        /// for one statement. Default 20,000.
        public var maxOperationsPerStatement = 20_000
        /// The logger of the store and its connection pool. Default label `dna.store.postgres`.
        public var logger: Logger = Logger(label: "dna.store.postgres")

        /// TLS use, as libpq's `sslmode` names it.
        public enum TLSMode: String, Sendable {
            /// Plain TCP (`sslmode` `disable` or `allow`).
            case disable
            /// TLS if the server offers it, plain TCP if not.
            case prefer
            /// TLS or no connection (`sslmode` `require`, `verify-ca`, `verify-full`), the server's
            /// certificate verified.
            case require
        }

        /// Parses `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `postgresql://`).
        /// User and password may be percent-encoded. Of the query parameters only
        /// `sslmode` is read; others are ignored.
        /// Throws `StoreError.Code.invalidArgument` if malformed.
        public init(url: String) throws(StoreError) {
            func invalid(_ why: String) -> StoreError {
                StoreError(.invalidArgument, "invalid PostgreSQL URL \(Self.redacted(url)): \(why)")
            }
            guard let components = URLComponents(string: url) else { throw invalid("not a URL") }
            guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
                throw invalid("the scheme must be postgres:// or postgresql://")
            }
            guard let host = components.host, !host.isEmpty else { throw invalid("no host") }
            guard let user = components.user, !user.isEmpty else { throw invalid("no user") }
            let database = String(components.path.drop(while: { $0 == "/" }))
            guard !database.isEmpty, !database.contains("/") else { throw invalid("no database (…/DATABASE)") }
            if let port = components.port {
                guard (1...65535).contains(port) else { throw invalid("port out of range") }
                self.port = port
            }
            self.host = host
            self.username = user
            self.password = components.password
            self.database = database
            for item in components.queryItems ?? [] where item.name == "sslmode" {
                switch item.value ?? "" {
                case "disable", "allow": tls = .disable
                case "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw invalid("unknown sslmode")
                }
            }
        }

        /// The URL without its password, for logs and messages.
        public var redactedURL: String {
            "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
        }

        /// `url` with anything between `://` and `@` after a colon replaced, so a
        /// malformed URL can be shown without its password.
        package static func redacted(_ url: String) -> String {
            guard let schemeEnd = url.range(of: "://"), let at = url.range(of: "@", options: .backwards),
                at.lowerBound > schemeEnd.upperBound
            else { return url.contains("@") ? "(hidden)" : url }
            let userInfo = url[schemeEnd.upperBound..<at.lowerBound]
            guard let colon = userInfo.firstIndex(of: ":") else { return url }
            return String(url[..<colon]) + ":***" + String(url[at.lowerBound...])
        }

        /// Settings of every session, sent at connection start-up: the pool's own, then the
        /// timeouts above and TCP keepalives (so the server notices a vanished client within
        /// about 11 s), which replace any of the same name.
        var sessionSettings: [(String, String)] {
            let required = [
                ("idle_in_transaction_session_timeout", "\(transactionIdleTimeout.milliseconds)"),
                ("lock_timeout", "\(lockTimeout.milliseconds)"),
                ("statement_timeout", "\(statementTimeout.milliseconds)"),
                ("tcp_keepalives_idle", "5"), ("tcp_keepalives_interval", "2"), ("tcp_keepalives_count", "3"),
            ]
            let names = Set(required.map(\.0))
            return pool.additionalStartupParameters.filter { !names.contains($0.0) } + required
        }

        /// The pool's configuration: ``pool`` with the session settings, and the target.
        func clientConfiguration() throws(StoreError) -> PostgresClient.Configuration {
            let clientTLS: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: clientTLS = .disable
            case .prefer: clientTLS = .prefer(tlsConfiguration)
            case .require: clientTLS = .require(tlsConfiguration)
            }
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: clientTLS)
            configuration.options = pool
            configuration.options.additionalStartupParameters = sessionSettings
            return configuration
        }

        /// A connection of its own, outside the pool, with the same target and settings.
        package func connectionConfiguration() throws(StoreError) -> PostgresConnection.Configuration {
            let connectionTLS: PostgresConnection.Configuration.TLS
            do {
                switch tls {
                case .disable: connectionTLS = .disable
                case .prefer: connectionTLS = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
                case .require: connectionTLS = .require(try NIOSSLContext(configuration: tlsConfiguration))
                }
            } catch {
                throw StoreError(.invalidArgument, "cannot set up TLS: \(error)")
            }
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: connectionTLS)
            configuration.options.connectTimeout = .milliseconds(pool.connectTimeout.milliseconds)
            configuration.options.tlsServerName = pool.tlsServerName
            configuration.options.requireBackendKeyData = pool.requireBackendKeyData
            configuration.options.additionalStartupParameters = sessionSettings
            return configuration
        }
    }
}
