import DNAStore

/// An activation's durable alarms: rows of the runtime module `ModuleRow.alarmModule`,
/// written with the batch like any module (so an alarm set by a message that fails is not
/// set), undone with the message.
final class AlarmSchedule: UndoableModule {
    /// An alarm and the name it was set under. Names are told apart by their UTF-8 bytes,
    /// as the store keys its rows: `"é"` precomposed and decomposed are two alarms, though
    /// Swift's `==` calls the two strings equal.
    struct Entry {
        var name: String
        var alarm: AlarmRecord
    }

    private var entries: [KeyIdentity: Entry] = [:]
    private let log: WriteLog
    /// Each name's alarm before the current message first changed it.
    private var beforeMessage: [KeyIdentity: Entry?] = [:]
    private var touchedMessage = -1
    private var touchedInBatch = false

    init(rows: ArraySlice<ModuleRow>, log: WriteLog) {
        self.log = log
        for row in rows {
            guard let alarm = AlarmRecord(encoded: row.value) else { continue }
            let name = String(decoding: row.key, as: UTF8.self)
            entries[.utf8(name)] = Entry(name: name, alarm: alarm)
        }
    }

    /// The alarm set under exactly these bytes.
    subscript(name: String) -> AlarmRecord? { entries[.utf8(name)]?.alarm }

    var count: Int { entries.count }

    /// Every alarm, in the order of their names' bytes.
    var all: [Entry] { entries.values.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) } }

    func set(_ name: String, _ alarm: AlarmRecord) {
        let identity = KeyIdentity.utf8(name)
        touch(identity)
        entries[identity] = Entry(name: name, alarm: alarm)
        log.append(StorageOperation(module: ModuleRow.alarmModule, key: Array(name.utf8), value: alarm.encoded))
    }

    func remove(_ name: String) {
        let identity = KeyIdentity.utf8(name)
        guard entries[identity] != nil else { return }
        touch(identity)
        entries[identity] = nil
        log.append(StorageOperation(module: ModuleRow.alarmModule, key: Array(name.utf8), value: nil))
    }

    private func touch(_ name: KeyIdentity) {
        if touchedMessage != log.message {
            touchedMessage = log.message
            log.touched(self, firstInBatch: !touchedInBatch)
            touchedInBatch = true
            beforeMessage = [:]
        }
        if beforeMessage.index(forKey: name) == nil { beforeMessage[name] = .some(entries[name]) }
    }

    func undoMessage() {
        for (name, old) in beforeMessage { entries[name] = old }
        beforeMessage = [:]
        touchedMessage = -1
    }

    func forgetUndo() {
        beforeMessage = [:]
        touchedMessage = -1
        touchedInBatch = false
    }
}

/// The runtime's request that fires an actor's alarm: sent by the node that found it due
/// (see `Node.alarmLoop`), routed like any message to the actor's owner, and handled by the
/// activation itself (``DurableActor/alarm(_:context:)``), which checks that the alarm is
/// still the one found (a repeated or late fire is ignored).
struct AlarmFire: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.alarm" }
    var name: String
    var due: Int64
}
