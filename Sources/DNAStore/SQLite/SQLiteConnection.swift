import CSQLite

/// One SQLite connection and its prepared statements. Not thread-safe: it belongs to the
/// one thread that uses it (the store's worker, or a benchmark's baseline loop).
package final class SQLiteConnection {
    let handle: OpaquePointer

    /// Process-wide SQLite settings, applied once before the first connection.
    private static let configured: Bool = {
        _ = dna_sqlite_disable_memory_statistics()
        return true
    }()

    /// Opens (creating if needed) the database at `path`.
    package init(path: String) throws(StoreError) {
        _ = Self.configured
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw Self.error(rc, "cannot open \(path): \(message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 0)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs one or more statements that return no rows.
    package func execute(_ sql: String) throws(StoreError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw Self.error(rc, message)
        }
    }

    /// Prepares a statement to keep and reuse.
    package func prepare(_ sql: String) throws(StoreError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw Self.error(rc, "\(lastErrorMessage) in: \(sql)") }
        return SQLiteStatement(statement, connection: self)
    }

    var lastErrorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    package var changes: Int { Int(sqlite3_changes(handle)) }

    package var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Whether `error` is SQLite's "busy" (another connection holds a lock it needs).
    static func isBusy(_ error: StoreError) -> Bool {
        error.code == .unavailable && error.message.hasPrefix("sqlite (code \(SQLITE_BUSY)):")
    }

    /// Maps an SQLite result code to a ``StoreError`` code.
    static func error(_ rc: Int32, _ message: String) -> StoreError {
        switch rc & 0xFF {
        case SQLITE_CORRUPT: return StoreError(.corrupt, "database is damaged: \(message)")
        case SQLITE_NOTADB: return StoreError(.notADNADatabase, "file is not a database: \(message)")
        case SQLITE_MISUSE, SQLITE_RANGE, SQLITE_MISMATCH, SQLITE_TOOBIG, SQLITE_CONSTRAINT:
            return StoreError(.invalidArgument, "sqlite: \(message)")
        default: return StoreError(.unavailable, "sqlite (code \(rc)): \(message)")
        }
    }
}

/// A prepared statement. Bind, step, read columns, reset.
package final class SQLiteStatement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    init(_ handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    package func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }

    package func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { bytes in
            _ = sqlite3_bind_text(handle, index, bytes.baseAddress, Int32(bytes.count), dna_sqlite_transient())
        }
    }

    package func bind(_ index: Int32, _ value: Int64?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    package func bind(_ index: Int32, _ value: String?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Binds a blob, or NULL for `nil`.
    package func bind(_ index: Int32, bytes: [UInt8]?) {
        if let bytes { bind(index, bytes: bytes) } else { sqlite3_bind_null(handle, index) }
    }

    /// Binds a blob. One longer than SQLite can take is bound as NULL, which the schema's
    /// NOT NULL constraints then refuse with an error (not a crash).
    package func bind(_ index: Int32, bytes: [UInt8]) {
        guard bytes.count <= Int(Int32.max) else {
            sqlite3_bind_null(handle, index)
            return
        }
        bytes.withUnsafeBufferPointer { buffer in
            // A zero-length blob must not be bound as NULL: give SQLite a valid pointer.
            _ = sqlite3_bind_blob(
                handle, index, buffer.baseAddress ?? UnsafePointer(bitPattern: 1), Int32(buffer.count), dna_sqlite_transient())
        }
    }

    /// Steps once: `true` when a row is ready, `false` when done.
    @discardableResult
    package func step() throws(StoreError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let message = connection.lastErrorMessage
        sqlite3_reset(handle)
        throw SQLiteConnection.error(rc, message)
    }

    /// Steps to completion, then resets.
    package func run() throws(StoreError) {
        defer { reset() }
        while try step() {}
    }

    package func reset() {
        sqlite3_reset(handle)
    }

    /// Sets every parameter to NULL, releasing SQLite's copies of the values bound (it
    /// keeps them until they are bound again).
    package func clearBindings() {
        sqlite3_clear_bindings(handle)
    }

    /// The statement's SQL with the values bound now in place of its parameters.
    var expandedSQL: String {
        guard let text = sqlite3_expanded_sql(handle) else { return "" }
        defer { sqlite3_free(text) }
        return String(cString: text)
    }

    package func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    package func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    package func bytes(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let blob = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: blob, count: count))
    }
}
