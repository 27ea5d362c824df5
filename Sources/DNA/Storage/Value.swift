/// A storage module holding one `Codable` document: the actor's durable state.
///
/// ```swift
/// let state = try context.value("state", default: Game())
/// try state.set(updated)          // committed with the batch
/// ```
public final class Value<Document: Codable & Sendable>: UndoableModule {
    let name: String
    private let log: WriteLog
    private var current: Document
    /// The document before the current message's first write, if it wrote.
    private var beforeMessage: Document?
    private var touchedMessage = -1
    private var touchedInBatch = false
    private static var key: [UInt8] { [] }

    init(name: String, rows: ArraySlice<ModuleRow>, default defaultValue: Document, log: WriteLog) throws(DNAError) {
        self.name = name
        self.log = log
        if let row = rows.first {
            current = try StorageCoding.decode(Document.self, from: row.value)
        } else {
            current = defaultValue
        }
    }

    /// The document, including a write not yet committed.
    public var value: Document { current }

    /// Replaces the document; committed with the current batch.
    /// - Throws: ``DNAError/Code/encodingFailed`` if it cannot be encoded.
    public func set(_ newValue: Document) throws(DNAError) {
        let encoded = try StorageCoding.encode(newValue)
        if touchedMessage != log.message {
            touchedMessage = log.message
            log.touched(self, firstInBatch: !touchedInBatch)
            touchedInBatch = true
            beforeMessage = current
        }
        current = newValue
        log.append(StorageOperation(module: name, key: Self.key, value: encoded))
    }

    /// Changes the document in place; committed with the current batch.
    public func update(_ body: (inout Document) throws -> Void) throws {
        var copy = current
        try body(&copy)
        try set(copy)
    }

    @usableFromInline
    func undoMessage() {
        if let beforeMessage { current = beforeMessage }
        beforeMessage = nil
        touchedMessage = -1
    }

    @usableFromInline
    func forgetUndo() {
        beforeMessage = nil
        touchedMessage = -1
        touchedInBatch = false
    }
}
