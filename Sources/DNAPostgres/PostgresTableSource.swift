@_spi(StoreEngine) public import DNAStore
public import DNAStore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A PostgreSQL table as a `PartitionSource`: rows ordered by a sequence column (a
/// `bigserial`, say), optionally split into partitions by a partition column; the row's key
/// and value come from two columns (`bytea` as it is, any other type as its text in UTF-8).
/// Reads through a `PostgresStore`'s connections. Positions are the sequence column's
/// values; a partition whose rows stop coming is still open (a table has no end). Without a
/// partition column the table is one partition, ``wholeTable``.
///
/// Sequence values commit out of order (a transaction takes 10, another takes 11 and
/// commits first), so a read returns only rows below which nothing can still appear: up to
/// the highest value seen at an earlier read once every transaction that was then writing
/// to the table has ended (the settled horizon). That holds when the values are taken by
/// the column's default (a sequence or identity without `CACHE`) in the statement that
/// inserts the row, which is what `bigserial` and `GENERATED ... AS IDENTITY` do.
public struct PostgresTableSource: PartitionSource {
    /// A value of the sequence column.
    public typealias Position = Int64

    /// The store whose connections the reads go through.
    public let store: PostgresStore
    /// The table read: `table` or `schema.table`.
    public let table: String
    /// The column that orders the rows; positions are its values.
    public let sequenceColumn: String
    /// The column of a record's key.
    public let keyColumn: String
    /// The column of a record's value.
    public let valueColumn: String
    /// The column whose values, as text, are the partitions; `nil`: the table is one,
    /// ``wholeTable``.
    public let partitionColumn: String?
    private let horizon = SettledHorizon()

    /// - Throws: `StoreError.Code.invalidArgument` for a table or column name that is not
    ///   a plain SQL identifier (letters, digits, `_`; a table may be `schema.table`): names
    ///   go into the SQL as they are.
    public init(
        store: PostgresStore, table: String, sequenceColumn: String, keyColumn: String, valueColumn: String,
        partitionColumn: String? = nil
    ) throws(StoreError) {
        for (what, name) in [
            ("table", table), ("sequence column", sequenceColumn), ("key column", keyColumn), ("value column", valueColumn),
        ]
            + (partitionColumn.map { [("partition column", $0)] } ?? [])
        {
            guard Self.isIdentifier(name, qualified: what == "table") else {
                throw StoreError(.invalidArgument, "the \(what) '\(name)' is not a plain SQL identifier")
            }
        }
        self.store = store
        self.table = table
        self.sequenceColumn = sequenceColumn
        self.keyColumn = keyColumn
        self.valueColumn = valueColumn
        self.partitionColumn = partitionColumn
    }

    static func isIdentifier(_ name: String, qualified: Bool) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= (qualified ? 2 : 1) else { return false }
        return parts.allSatisfy { part in
            guard let first = part.first, first == "_" || (first.isASCII && first.isLetter), part.utf8.count <= 63 else { return false }
            return part.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
        }
    }

    /// The partition column's distinct values, as text, or ``wholeTable`` without one; all
    /// open, none with parents.
    public func partitions() async throws -> [SourcePartition] {
        guard let partitionColumn else { return [SourcePartition(id: Self.wholeTable)] }
        let sql = "SELECT DISTINCT \(partitionColumn)::text FROM \(table) ORDER BY 1"
        let logger = store.configuration.logger
        return try await store.withConnection("listing the partitions of \(table)") { connection in
            var result: [SourcePartition] = []
            for try await id in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(String.self) {
                result.append(SourcePartition(id: id))
            }
            return result
        }
    }

    /// The one partition of a table read without a partition column.
    public static let wholeTable = "all"

    /// 0: a read returns rows whose sequence value is above it, so rows at 0 or below are never
    /// read (`bigserial` starts at 1).
    public func start(of partition: String) async throws -> Int64 { 0 }

    /// Up to `limit` rows (1 to 10,000) of `partition` after `position`, in order of the sequence
    /// column, among those below which no row can still appear (see above): a read may return
    /// fewer rows than there are, never skip one.
    public func read(_ partition: String, after position: Int64, limit: Int) async throws -> [SourceRecord<Int64>] {
        guard limit >= 1, limit <= StreamReadRule.maxLimit else {
            throw StoreError(.invalidArgument, "a read returns 1 to \(StreamReadRule.maxLimit) records, asked for \(limit)")
        }
        // The highest value committed, then (the same statement, so afterwards) the
        // transactions writing to the table: every INSERT holds RowExclusiveLock on it from
        // before it takes its value until its transaction ends.
        let sample = """
            SELECT (SELECT max(\(sequenceColumn))::bigint FROM \(table)),
                ARRAY(SELECT virtualtransaction FROM pg_locks
                    WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' AND relation = '\(table)'::regclass
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
            """
        var filter = "\(sequenceColumn) > $1 AND \(sequenceColumn) <= $2"
        if let partitionColumn {
            filter += " AND \(partitionColumn)::text = $3"
        }
        // `bytea` as it is; anything else (text above all) as its text: a cast of text to
        // bytea would parse backslashes as escapes.
        func bytes(_ column: String) -> String {
            "CASE WHEN pg_typeof(\(column)) = 'bytea'::regtype THEN \(column)::text::bytea ELSE convert_to(\(column)::text, 'UTF8') END"
        }
        let sql = """
            SELECT \(sequenceColumn)::bigint, \(bytes(keyColumn)), \(bytes(valueColumn)) FROM \(table)
            WHERE \(filter) ORDER BY \(sequenceColumn) LIMIT \(limit)
            """
        let logger = store.configuration.logger
        let horizon = horizon
        let partitionColumn = partitionColumn
        return try await store.withConnection("reading \(table)") { connection in
            var settled = horizon.settled
            for try await (highest, writers) in try await connection.query(PostgresQuery(unsafeSQL: sample), logger: logger)
                .decode((Int64?, [String]).self)
            {
                settled = horizon.advance(highest: highest, writers: Set(writers))
            }
            guard settled > position else { return [] }
            var binds = PostgresBindings()
            binds.append(position)
            binds.append(settled)
            if partitionColumn != nil { binds.append(partition) }
            var records: [SourceRecord<Int64>] = []
            for try await (sequence, key, value) in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                .decode((Int64, ByteBuffer, ByteBuffer).self)
            {
                records.append(SourceRecord(position: sequence, key: Array(key.readableBytesView), value: Array(value.readableBytesView)))
            }
            return records
        }
    }
}

/// The highest sequence value of a table below which no row can still appear, learnt from
/// two samples. A sample is the highest value committed and the transactions then writing
/// to the table. Each row at or below that value was taken (sequences only grow) by a
/// transaction that had begun its INSERT before the sample, so it had committed, rolled
/// back, or was one of those writers; once none of them holds its lock any more (locks go
/// after the commit is visible), every such row is there to read.
final class SettledHorizon: Sendable {
    private struct State {
        var settled = Int64.min
        /// A sample waiting for its writers to end.
        var pending: (highest: Int64, writers: Set<String>)?
    }

    private let state = Mutex(State())

    var settled: Int64 { state.withLock { $0.settled } }

    /// Takes a sample (`writers`: the virtual transaction ids); returns the bound now.
    func advance(highest: Int64?, writers: Set<String>) -> Int64 {
        state.withLock { state in
            if let pending = state.pending, pending.writers.isDisjoint(with: writers) {
                state.settled = max(state.settled, pending.highest)
                state.pending = nil
            }
            if state.pending == nil, let highest, highest > state.settled {
                if writers.isEmpty { state.settled = highest } else { state.pending = (highest, writers) }
            }
            return state.settled
        }
    }
}
