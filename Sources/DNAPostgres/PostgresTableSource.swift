import DNAStore
import Logging
import NIOCore
import PostgresNIO

/// A PostgreSQL table as a ``PartitionSource``: rows ordered by a sequence column (a
/// `bigserial`, say), optionally split into partitions by a partition column; the row's key
/// and value come from two columns (`text` or `bytea`). Reads through a `PostgresStore`'s
/// connections. Positions are the sequence column's values; a partition whose rows stop
/// coming is still open (a table has no end). Without a partition column the table is one
/// partition, ``wholeTable``.
public struct PostgresTableSource: PartitionSource {
    public typealias Position = Int64

    public let store: PostgresStore
    public let table: String
    public let sequenceColumn: String
    public let keyColumn: String
    public let valueColumn: String
    public let partitionColumn: String?

    /// - Throws: ``StoreError/Code/invalidArgument`` for a table or column name that is not
    ///   a plain SQL identifier (letters, digits, `_`; a table may be `schema.table`): names
    ///   go into the SQL as they are.
    public init(
        store: PostgresStore, table: String, sequenceColumn: String, keyColumn: String, valueColumn: String,
        partitionColumn: String? = nil
    ) throws(StoreError) {
        for (what, name) in [("table", table), ("sequence column", sequenceColumn), ("key column", keyColumn), ("value column", valueColumn)]
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

    public func start(of partition: String) async throws -> Int64 { 0 }

    public func read(_ partition: String, after position: Int64, limit: Int) async throws -> [SourceRecord<Int64>] {
        guard limit >= 1, limit <= StreamReadRule.maxLimit else {
            throw StoreError(.invalidArgument, "a read returns 1 to \(StreamReadRule.maxLimit) records, asked for \(limit)")
        }
        var bindings = PostgresBindings()
        bindings.append(position)
        var filter = "\(sequenceColumn) > $1"
        if let partitionColumn {
            bindings.append(partition)
            filter += " AND \(partitionColumn)::text = $2"
        }
        let sql = """
            SELECT \(sequenceColumn)::bigint, convert_to(\(keyColumn)::text, 'UTF8'), \(valueColumn)::bytea FROM \(table)
            WHERE \(filter) ORDER BY \(sequenceColumn) LIMIT \(limit)
            """
        let logger = store.configuration.logger
        let binds = bindings
        return try await store.withConnection("reading \(table)") { connection in
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
