/// The writes an activation staged since its last commit, in order, across all of its
/// modules; and the undo of the message being handled, so a handler that throws leaves
/// nothing behind.
final class WriteLog {
    private(set) var operations: [StorageOperation] = []
    private var messageStart = 0
    private var touched: [any UndoableModule] = []

    func append(_ operation: StorageOperation, from module: any UndoableModule, firstTouch: Bool) {
        operations.append(operation)
        if firstTouch { touched.append(module) }
    }

    var hasWrites: Bool { !operations.isEmpty }

    /// The message succeeded: its writes stay staged.
    func endMessage() {
        if !touched.isEmpty {
            for module in touched { module.forgetUndo() }
            touched.removeAll(keepingCapacity: true)
        }
        messageStart = operations.count
    }

    /// The message failed: its writes are undone.
    func rollbackMessage() {
        for module in touched.reversed() { module.undo() }
        touched.removeAll(keepingCapacity: true)
        operations.removeSubrange(messageStart...)
    }

    /// Takes everything staged, for a commit.
    func take() -> [StorageOperation] {
        defer {
            operations = []
            messageStart = 0
        }
        return operations
    }
}

/// A storage module that can undo the current message's writes.
protocol UndoableModule: AnyObject {
    func undo()
    func forgetUndo()
}
