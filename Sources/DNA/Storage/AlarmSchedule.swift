import DNAStore

/// An activation's durable alarms: rows of the runtime module ``ModuleRow/alarmModule``,
/// written with the batch like any module (so an alarm set by a message that fails is not
/// set), undone with the message.
final class AlarmSchedule: UndoableModule {
    private(set) var alarms: [String: AlarmRecord] = [:]
    private let log: WriteLog
    /// Each name's alarm before the current message first changed it.
    private var beforeMessage: [String: AlarmRecord?] = [:]
    private var touchedMessage = -1
    private var touchedInBatch = false

    init(rows: ArraySlice<ModuleRow>, log: WriteLog) {
        self.log = log
        for row in rows {
            if let alarm = AlarmRecord(encoded: row.value) { alarms[String(decoding: row.key, as: UTF8.self)] = alarm }
        }
    }

    func set(_ name: String, _ alarm: AlarmRecord) {
        touch(name)
        alarms[name] = alarm
        log.append(StorageOperation(module: ModuleRow.alarmModule, key: Array(name.utf8), value: alarm.encoded))
    }

    func remove(_ name: String) {
        guard alarms[name] != nil else { return }
        touch(name)
        alarms[name] = nil
        log.append(StorageOperation(module: ModuleRow.alarmModule, key: Array(name.utf8), value: nil))
    }

    private func touch(_ name: String) {
        if touchedMessage != log.message {
            touchedMessage = log.message
            log.touched(self, firstInBatch: !touchedInBatch)
            touchedInBatch = true
            beforeMessage = [:]
        }
        if beforeMessage.index(forKey: name) == nil { beforeMessage[name] = .some(alarms[name]) }
    }

    func undoMessage() {
        for (name, old) in beforeMessage { alarms[name] = old }
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
