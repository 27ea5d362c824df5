/// The SQLite schema (documented in `docs/schema.md`), and the check that a file is ours.
package enum SQLiteSchema {
    /// The schema version this build writes and reads.
    package static let version = 5

    /// The store clock: milliseconds since 1970 by the database's `now`.
    static let nowMilliseconds = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

    /// The table that holds every storage module's rows (also used by the benchmark baseline).
    package static let moduleDataTable = """
        CREATE TABLE IF NOT EXISTS dna_module_data (
            actor_id INTEGER NOT NULL,
            module   TEXT    NOT NULL,
            key      BLOB    NOT NULL,
            value    BLOB    NOT NULL,
            PRIMARY KEY (actor_id, module, key)
        ) WITHOUT ROWID;
        """

    /// The most rows one upsert statement of the store's writer carries.
    package static let maxRowsPerUpsert = 64

    /// The upsert of `rows` module rows in one statement (`rows` ≤ ``maxRowsPerUpsert``),
    /// also used by the benchmark baselines. Row `n` (from 0) binds parameters `4n + 1` to
    /// `4n + 4`. In one statement, a later row for the same key updates the earlier one, so
    /// the last write still wins.
    package static func upsertModuleRows(_ rows: Int) -> String {
        let tuples = (0..<rows).map { row in
            let first = 4 * row + 1
            return "(?\(first), ?\(first + 1), ?\(first + 2), ?\(first + 3))"
        }
        return """
            INSERT INTO dna_module_data (actor_id, module, key, value) VALUES \(tuples.joined(separator: ", "))
            ON CONFLICT (actor_id, module, key) DO UPDATE SET value = excluded.value
            """
    }

    static let tables = """
        CREATE TABLE dna_meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE dna_nodes (
            node_id      TEXT PRIMARY KEY,
            cluster      TEXT    NOT NULL,
            address      TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            started_ms   INTEGER NOT NULL,
            heartbeat_ms INTEGER NOT NULL,
            activations  INTEGER NOT NULL DEFAULT 0,
            failure_timeout_ms INTEGER NOT NULL DEFAULT 5000,
            labels       TEXT    NOT NULL DEFAULT '',
            rebalance_requested INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE dna_actors (
            actor_id  INTEGER PRIMARY KEY,
            namespace TEXT    NOT NULL,
            kind      TEXT    NOT NULL,
            name      TEXT    NOT NULL,
            owner     TEXT,
            epoch     INTEGER NOT NULL,
            batch_seq INTEGER NOT NULL DEFAULT 0,
            order_state BLOB,
            UNIQUE (namespace, kind, name)
        );
        CREATE INDEX dna_actors_owner ON dna_actors (owner);
        \(moduleDataTable)
        \(streamTables)
        \(parkedColumn)
        INSERT INTO dna_meta (key, value) VALUES ('format', 'dna'), ('schema_version', '\(version)');
        """

    /// Version 1 → 2: each node records its own failure timeout (nodes written by version 1
    /// used the default, 5 s); each name keeps the runtime's order state.
    static let migrationToVersion2 = """
        ALTER TABLE dna_nodes ADD COLUMN failure_timeout_ms INTEGER NOT NULL DEFAULT 5000;
        ALTER TABLE dna_actors ADD COLUMN order_state BLOB;
        UPDATE dna_meta SET value = '2' WHERE key = 'schema_version';
        """

    /// Version 2 → 3: each node records its labels and whether a rebalancing round was
    /// asked of it (`dna rebalance`).
    static let migrationToVersion3 = """
        ALTER TABLE dna_nodes ADD COLUMN labels TEXT NOT NULL DEFAULT '';
        ALTER TABLE dna_nodes ADD COLUMN rebalance_requested INTEGER NOT NULL DEFAULT 0;
        UPDATE dna_meta SET value = '3' WHERE key = 'schema_version';
        """

    /// Streams (schema version 4): a stream, its partitions (each a range of the key-hash
    /// space; closed ones end where they stopped taking appends), the parent edges of
    /// split and merged partitions, the records, and the producers' last sequences.
    static let streamTables = """
        CREATE TABLE dna_streams (
            stream_id    INTEGER PRIMARY KEY,
            namespace    TEXT    NOT NULL,
            name         TEXT    NOT NULL,
            retention_ms INTEGER,
            retention_bytes INTEGER,
            drop_unconsumed INTEGER NOT NULL DEFAULT 0,
            created_ms   INTEGER NOT NULL,
            UNIQUE (namespace, name)
        );
        CREATE TABLE dna_partitions (
            stream_id    INTEGER NOT NULL,
            partition_id INTEGER NOT NULL,
            state        TEXT    NOT NULL,
            key_lo       INTEGER NOT NULL,
            key_hi       INTEGER NOT NULL,
            first_seq    INTEGER NOT NULL DEFAULT 1,
            next_seq     INTEGER NOT NULL DEFAULT 1,
            bytes        INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (stream_id, partition_id)
        ) WITHOUT ROWID;
        CREATE TABLE dna_partition_edges (
            stream_id INTEGER NOT NULL,
            parent_id INTEGER NOT NULL,
            child_id  INTEGER NOT NULL,
            PRIMARY KEY (stream_id, parent_id, child_id)
        ) WITHOUT ROWID;
        CREATE TABLE dna_records (
            stream_id    INTEGER NOT NULL,
            partition_id INTEGER NOT NULL,
            seq          INTEGER NOT NULL,
            key          BLOB    NOT NULL,
            value        BLOB    NOT NULL,
            appended_ms  INTEGER NOT NULL,
            PRIMARY KEY (stream_id, partition_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE dna_producers (
            stream_id    INTEGER NOT NULL,
            producer_id  TEXT    NOT NULL,
            last_seq     INTEGER NOT NULL,
            PRIMARY KEY (stream_id, producer_id)
        ) WITHOUT ROWID;
        CREATE TABLE dna_stream_progress (
            stream_id    INTEGER NOT NULL,
            partition_id INTEGER NOT NULL,
            consumer     TEXT    NOT NULL,
            next_seq     INTEGER NOT NULL,
            updated_ms   INTEGER NOT NULL,
            PRIMARY KEY (stream_id, partition_id, consumer)
        ) WITHOUT ROWID;
        """

    /// Version 3 → 4: streams.
    static let migrationToVersion4 =
        streamTables + """
            UPDATE dna_meta SET value = '4' WHERE key = 'schema_version';
            """

    /// A consumer stage that parked a partition (its handler kept failing) says why here.
    static let parkedColumn = "ALTER TABLE dna_stream_progress ADD COLUMN parked TEXT;"

    /// Version 4 → 5: parked consumers.
    static let migrationToVersion5 =
        parkedColumn + """
            UPDATE dna_meta SET value = '5' WHERE key = 'schema_version';
            """

    /// Alarms found by due time without visiting actors: a partial index on the first 8
    /// bytes of the alarm rows' values (the due time, big-endian). Made at every open, so
    /// files of earlier versions get it too.
    static let alarmIndex = """
        CREATE INDEX IF NOT EXISTS dna_alarms_due ON dna_module_data (substr(value, 1, 8)) WHERE module = '\(ModuleRow.alarmModule)'
        """

    /// The alarms due by `?1` (``AlarmRecord/dueKey(_:)``), earliest first, at most `?2`,
    /// with their name's owner if it is alive; through ``alarmIndex``.
    package static let dueAlarms = """
        SELECT a.namespace, a.kind, a.name, m.key, substr(m.value, 1, 8),
            CASE WHEN n.state <> 'left' AND \(nowMilliseconds) - n.heartbeat_ms < n.failure_timeout_ms THEN a.owner END
        FROM dna_module_data m JOIN dna_actors a ON a.actor_id = m.actor_id LEFT JOIN dna_nodes n ON n.node_id = a.owner
        WHERE m.module = '\(ModuleRow.alarmModule)' AND substr(m.value, 1, 8) <= ?1
        ORDER BY substr(m.value, 1, 8) LIMIT ?2
        """

    /// Sets the connection up (WAL, durability, busy timeout).
    package static func configure(
        _ connection: SQLiteConnection, synchronous: SQLiteStore.Configuration.Synchronous, busyTimeout: Duration
    ) throws(StoreError) {
        try connection.execute("PRAGMA busy_timeout = \(busyTimeout.milliseconds)")
        let journal = try connection.prepare("PRAGMA journal_mode = WAL")
        _ = try journal.step()
        let mode = journal.string(0)
        journal.reset()
        guard mode.lowercased() == "wal" else {
            throw StoreError(.unavailable, "cannot switch the database to WAL mode (got '\(mode)')")
        }
        try connection.execute("PRAGMA synchronous = \(synchronous.rawValue); PRAGMA cache_size = -65536")
    }

    /// Creates the schema in an empty database, or checks that an existing one is ours and
    /// of a version this build understands.
    static func prepare(_ connection: SQLiteConnection, path: String) throws(StoreError) {
        try connection.execute("BEGIN IMMEDIATE")
        do throws(StoreError) {
            let tables = try connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            var names: Set<String> = []
            while try tables.step() { names.insert(tables.string(0)) }
            tables.reset()
            if names.isEmpty {
                try connection.execute(Self.tables)
            } else {
                guard names.contains("dna_meta") else {
                    throw StoreError(
                        .notADNADatabase,
                        "\(path) holds tables of another application (\(names.sorted().prefix(5).joined(separator: ", "))); refusing to use it"
                    )
                }
                let meta = try connection.prepare("SELECT key, value FROM dna_meta")
                var values: [String: String] = [:]
                while try meta.step() { values[meta.string(0)] = meta.string(1) }
                meta.reset()
                guard values["format"] == "dna", let versionText = values["schema_version"], let found = Int(versionText) else {
                    throw StoreError(.notADNADatabase, "\(path) has a dna_meta table without DNA's format marker")
                }
                guard found <= version else {
                    throw StoreError(.schemaTooNew, "\(path) has schema version \(found); this build reads up to \(version)")
                }
                if found < 2 { try connection.execute(migrationToVersion2) }
                if found < 3 { try connection.execute(migrationToVersion3) }
                if found < 4 { try connection.execute(migrationToVersion4) }
                if found < 5 { try connection.execute(migrationToVersion5) }
            }
            try connection.execute(alarmIndex)
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
