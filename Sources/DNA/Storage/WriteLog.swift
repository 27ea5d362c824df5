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
    /// Stream appends and checkpoints staged since the last commit (``CommitBatch/streams``),
    /// and where the current message's began.
    private(set) var streams = StreamEffects.none
    private var streamsStart = (appends: 0, progress: 0)
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
        if !streams.isEmpty { streamsStart = (streams.appends.count, streams.progress.count) }
        message &+= 1
    }

    func appendRecord(_ record: StreamAppendRecord, to stream: StreamName) {
        // Consecutive records to one stream share an entry (the engine appends it at once).
        if streams.appends.count > streamsStart.appends, streams.appends[streams.appends.count - 1].stream == stream {
            streams.appends[streams.appends.count - 1].records.append(record)
        } else {
            streams.appends.append(StreamEffects.Append(stream: stream, records: [record]))
        }
    }

    func recordProgress(_ progress: StreamEffects.Progress) {
        streams.progress.append(progress)
    }

    /// The message failed: its writes are undone.
    func rollbackMessage() {
        for module in touchedInMessage.reversed() { module.undoMessage() }
        touchedInMessage.removeAll(keepingCapacity: true)
        operations.removeSubrange(messageStart...)
        if !streams.isEmpty {
            streams.appends.removeSubrange(streamsStart.appends...)
            streams.progress.removeSubrange(streamsStart.progress...)
        }
        message &+= 1
    }

    /// Takes the stream effects staged, for a commit (with ``take()``).
    func takeStreams() -> StreamEffects {
        guard !streams.isEmpty else { return .none }
        defer {
            streams = .none
            streamsStart = (0, 0)
        }
        return streams
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
