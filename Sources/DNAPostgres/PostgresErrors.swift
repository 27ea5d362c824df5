package import DNAStore
import PostgresNIO

/// Maps what postgres-nio, the pool and NIO throw to `StoreError` codes.
///
/// Whatever comes from the network or from a server that is going away is
/// `StoreError.Code.unavailable` (retryable): the pool reconnects by itself once the
/// server is back. Messages are built from the SQLSTATE and the server's message, never
/// from the configuration, so they cannot hold the password.
package enum PostgresErrors {
    /// SQLSTATEs (or classes, two characters) after which trying again may succeed.
    static let retryableStates: Set<String> = [
        "08",  // connection exception
        "53",  // insufficient resources (too many connections, disk full, out of memory)
        "57P01", "57P02", "57P03",  // admin shutdown, crash shutdown, cannot connect now
        "57014",  // query cancelled (statement timeout)
        "40001", "40P01",  // serialization failure, deadlock
        "55P03",  // lock not available
        "25006",  // read-only transaction (a standby, or a failover in progress)
    ]

    package static func map(_ error: any Error, _ context: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PSQLError { return map(error, context) }
        if error is CancellationError {
            return StoreError(.unavailable, "\(context): cancelled")
        }
        // NIO's connect and I/O errors (refused, reset, timed out, …), the pool's errors.
        return StoreError(.unavailable, "\(context): \(error)")
    }

    static func map(_ error: PSQLError, _ context: String) -> StoreError {
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? "?????"
            let message = error.serverInfo?[.message] ?? "unknown error"
            let text = "\(context): PostgreSQL error \(state): \(message)"
            if retryableStates.contains(state) || retryableStates.contains(String(state.prefix(2))) {
                return StoreError(.unavailable, text)
            }
            if state.hasPrefix("XX") { return StoreError(.corrupt, text) }
            if state.hasPrefix("28") || state == "3D000" {
                // Wrong password or no such database: the configuration, not the data.
                return StoreError(.unavailable, text)
            }
            return StoreError(.invalidArgument, text)
        case .poolClosed:
            return StoreError(.closed, "\(context): the store is closed")
        default:
            var text = "\(context): \(error.code)"
            if let underlying = error.underlying { text += " (\(underlying))" }
            return StoreError(.unavailable, text)
        }
    }

    /// The SQLSTATE of a server error, if it is one.
    static func sqlState(_ error: any Error) -> String? {
        guard let error = error as? PSQLError, error.code == .server else { return nil }
        return error.serverInfo?[.sqlState]
    }
}
