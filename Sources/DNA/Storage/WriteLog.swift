/// The writes an activation staged since its last commit, in order, across all of its
/// modules; and the undo of the message being handled, so a handler that throws leaves
/// nothing behind.
///
/// Modules keep their own undo entries for the whole batch and mark where the current
/// message began (``message``), so a successful message costs no bookkeeping.
@usableFromInline
final class WriteLog {
    private(set) var operations: [StorageOperation] = []
    private var messageStart = 0
    /// Stream appends and checkpoints staged since the last commit (`CommitBatch.streams`);
    /// made on first use, as most actors never append.
    private var staged: StagedStreams?
    /// Modules written in the current message, and in the batch so far.
    private var touchedInMessage: [any UndoableModule] = []
    private var touchedInBatch: [any UndoableModule] = []
    /// Numbers the messages of an activation, so a module can tell its first write in one.
    @usableFromInline private(set) var message = 0

    @usableFromInline
    func append(_ operation: StorageOperation) {
        operations.append(operation)
    }

    /// A module's first write in the current message.
    @usableFromInline
    func touched(_ module: any UndoableModule, firstInBatch: Bool) {
        touchedInMessage.append(module)
        if firstInBatch { touchedInBatch.append(module) }
    }

    /// The message succeeded: its writes stay staged.
    func endMessage() {
        if !touchedInMessage.isEmpty { touchedInMessage.removeAll(keepingCapacity: true) }
        messageStart = operations.count
        staged?.endMessage()
        message &+= 1
    }

    private var stagedStreams: StagedStreams {
        if let staged { return staged }
        let made = StagedStreams()
        staged = made
        return made
    }

    func appendRecord(_ record: StreamAppendRecord, to stream: StreamName) {
        stagedStreams.append(record, to: stream)
    }

    func recordProgress(_ progress: StreamEffects.Progress) {
        stagedStreams.effects.progress.append(progress)
    }

    /// The message failed: its writes are undone.
    func rollbackMessage() {
        for module in touchedInMessage.reversed() { module.undoMessage() }
        touchedInMessage.removeAll(keepingCapacity: true)
        operations.removeSubrange(messageStart...)
        staged?.rollbackMessage()
        message &+= 1
    }

    /// Takes the stream effects staged, for a commit (with ``take()``).
    func takeStreams() -> StreamEffects {
        guard let staged, !staged.effects.isEmpty else { return .none }
        return staged.take()
    }

    /// Takes everything staged, for a commit; the modules forget their undo entries.
    func take() -> [StorageOperation] {
        for module in touchedInBatch { module.forgetUndo() }
        touchedInBatch.removeAll(keepingCapacity: true)
        defer {
            operations = []
            messageStart = 0
        }
        return operations
    }
}

/// A storage module that can undo the current message's writes.
@usableFromInline
protocol UndoableModule: AnyObject {
    /// Undoes the writes of the current message.
    func undoMessage()
    /// Forgets every undo entry (the batch is being committed).
    func forgetUndo()
}

/// A log's stream effects, and where the current message's began.
final class StagedStreams {
    var effects = StreamEffects.none
    private var start = (appends: 0, progress: 0)

    func append(_ record: StreamAppendRecord, to stream: StreamName) {
        // Consecutive records to one stream share an entry (the engine appends it at once).
        if effects.appends.count > start.appends, effects.appends[effects.appends.count - 1].stream == stream {
            effects.appends[effects.appends.count - 1].records.append(record)
        } else {
            effects.appends.append(StreamEffects.Append(stream: stream, records: [record]))
        }
    }

    func endMessage() { start = (effects.appends.count, effects.progress.count) }

    func rollbackMessage() {
        effects.appends.removeSubrange(start.appends...)
        effects.progress.removeSubrange(start.progress...)
    }

    func take() -> StreamEffects {
        defer {
            effects = .none
            start = (0, 0)
        }
        return effects
    }
}
