package import Logging
package import PostgresNIO

/// A `bytea[]` parameter written straight from byte arrays, in PostgreSQL's binary array
/// format: no `ByteBuffer` per element, which matters for batches of thousands of rows.
package struct ByteaArray: PostgresNonThrowingEncodable {
    package var elements: [[UInt8]]

    package init(_ elements: [[UInt8]]) { self.elements = elements }

    package static var psqlType: PostgresDataType { .byteaArray }
    package static var psqlFormat: PostgresFormat { .binary }

    package func encode<JSONEncoder: PostgresJSONEncoder>(
        into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        // Header: dimensions, has-nulls flag, element type; then per dimension its length
        // and lower bound; then each element as length + bytes.
        buffer.writeInteger(Int32(elements.isEmpty ? 0 : 1))
        buffer.writeInteger(Int32(0))
        buffer.writeInteger(Int32(bitPattern: PostgresDataType.bytea.rawValue))
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(Int32(1))
        for element in elements {
            buffer.writeInteger(Int32(element.count))
            buffer.writeBytes(element)
        }
    }
}

extension ByteBuffer {
    /// The readable bytes as an array.
    var bytes: [UInt8] { Array(readableBytesView) }
}

extension PostgresConnection {
    /// Runs a statement and reads its result to the end (so nothing of it is left on the
    /// connection when it goes back to the pool).
    package func run(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}
