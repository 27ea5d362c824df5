import Foundation

/// Copies the WAL back into the database file on a thread of its own, so commits never
/// wait for a checkpoint (SQLite's default runs it inside the commit that crosses the
/// threshold). The writer reports how much it wrote; past `threshold` operations a
/// passive checkpoint runs, which never blocks the writer.
final class SQLiteCheckpointer: @unchecked Sendable {
    private let condition = NSCondition()
    private var pendingOperations = 0
    private var stopping = false
    private var stopped = false
    private let threshold: Int

    init(path: String, threshold: Int) throws(StoreError) {
        self.threshold = threshold
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA busy_timeout = 0")
        let handOff = ThreadHandOff(connection)
        let thread = Thread { [self] in self.loop(handOff) }
        thread.name = "dna-sqlite-checkpoint"
        thread.start()
    }

    /// The writer committed `operations` more rows.
    func wrote(_ operations: Int) {
        condition.lock()
        pendingOperations += operations
        if pendingOperations >= threshold { condition.signal() }
        condition.unlock()
    }

    /// Stops the thread after a last checkpoint; returns when it is done.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func loop(_ handOff: ThreadHandOff<SQLiteConnection>) {
        var connection: SQLiteConnection? = handOff.take()
        while true {
            condition.lock()
            while pendingOperations < threshold && !stopping { condition.wait() }
            let stop = stopping
            pendingOperations = 0
            condition.unlock()
            // Failure here is harmless: the WAL just stays longer until the next try.
            try? connection?.execute(stop ? "PRAGMA wal_checkpoint(TRUNCATE)" : "PRAGMA wal_checkpoint(PASSIVE)")
            if stop {
                connection = nil
                condition.lock()
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }
}
