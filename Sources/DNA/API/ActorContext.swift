import Synchronization

/// What an activation gets from the runtime: its name, its storage modules, messages to
/// itself, and a way to ask to be deactivated. One per activation; valid only inside the
/// actor's initialiser and handlers.
public final class ActorContext {
    /// This actor's name.
    public let id: ActorID
    let log = WriteLog()
    let timers: TimerSet
    private let rowsByModule: [String: ArraySlice<ModuleRow>]
    private var declaredModules: Set<String> = []
    package unowned let node: Node
    var deactivationRequested = false
    private let handedOverBytes: [UInt8]?
    /// What a feature keeps per activation (a stage consumer's position): see ``attached(_:)``.
    private var attachment: AnyObject?
    /// Made on first use: most activations have no alarms, and every one pays for the object.
    private var schedule: AlarmSchedule?
    var alarmSchedule: AlarmSchedule {
        if let schedule { return schedule }
        let made = AlarmSchedule(rows: [], log: log)
        schedule = made
        return made
    }

    /// The object a feature keeps for this activation (one per activation: a kind has a role
    /// in one feature at most), made by `make` on first use or if the one attached is of
    /// another type.
    func attached<T: AnyObject>(_ make: () throws -> T) rethrows -> T {
        if let existing = attachment as? T { return existing }
        let made = try make()
        attachment = made
        return made
    }

    /// The most alarms one actor may have set at once.
    public static let maxAlarms = 64
    /// The shortest repeat interval of an alarm.
    public static let minAlarmInterval: Duration = .seconds(1)

    /// The most bytes an actor's ``DurableActor/stateToHandOver()`` may take encoded: 1 MiB.
    public static let maxHandedOverStateSize = 1 << 20

    init(id: ActorID, rows: [ModuleRow], node: Node, timers: TimerSet, handedOverState: [UInt8]? = nil) {
        self.id = id
        self.node = node
        self.timers = timers
        self.handedOverBytes = handedOverState

        var grouped: [String: ArraySlice<ModuleRow>] = [:]
        var start = 0
        // Rows arrive sorted by module, then key.
        while start < rows.count {
            var end = start + 1
            while end < rows.count && rows[end].module == rows[start].module { end += 1 }
            grouped[rows[start].module] = rows[start..<end]
            start = end
        }
        rowsByModule = grouped
        if let alarms = grouped[ModuleRow.alarmModule] { schedule = AlarmSchedule(rows: alarms, log: log) }
    }

    private func declare(_ name: String) throws(DNAError) {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            throw DNAError(.invalidArgument, "module name must be 1 to 64 bytes, got '\(name)'")
        }
        guard !name.hasPrefix("dna.") else {
            throw DNAError(.invalidArgument, "module names starting with 'dna.' are reserved for the runtime, got '\(name)'")
        }
        guard declaredModules.insert(name).inserted else {
            throw DNAError(.invalidArgument, "module '\(name)' is declared twice in \(id.kind)")
        }
    }

    /// Declares a key-value module named `name` and returns it with its stored data.
    public func kv<Key, Value>(_ name: String, of: (Key.Type, Value.Type) = (Key.self, Value.self)) throws(DNAError) -> KV<Key, Value> {
        try declare(name)
        return try KV(name: name, rows: rowsByModule[name] ?? [], log: log)
    }

    /// Declares a single-document module named `name`, holding `default` until first set.
    public func value<Document>(_ name: String, default defaultValue: Document) throws(DNAError) -> Value<Document> {
        try declare(name)
        return try Value(name: name, rows: rowsByModule[name] ?? [], default: defaultValue, log: log)
    }

    /// A single-document module of the runtime's own (its name starts with `dna.`).
    func runtimeValue<Document>(_ name: String, default defaultValue: Document) throws(DNAError) -> Value<Document> {
        try Value(name: name, rows: rowsByModule[name] ?? [], default: defaultValue, log: log)
    }

    /// Appends a record to `stream` with the current batch: it is stored when the batch
    /// commits, in the same transaction as the batch's storage writes (and, in a
    /// ``StreamStage``, its input checkpoint), and not at all if the handler throws. The
    /// record goes to the open partition its key hashes to, or to `partition` if given.
    /// Records appended by one activation are stored in the order it appended them.
    ///
    /// - Throws: ``DNAError/Code/invalidArgument`` for a bad stream name, or a key or value
    ///   over `StreamAppendRecord.maxKeySize` / `StreamAppendRecord.maxValueSize`. A
    ///   stream or partition that does not exist fails the batch's commit, which is retried.
    public func append(to stream: StreamName, key: [UInt8], value: [UInt8], partition: Int? = nil) throws(DNAError) {
        let record = StreamAppendRecord(key: key, value: value, partition: partition)
        do {
            try stream.validate()
            try record.validate()
        } catch {
            throw DNAError(.invalidArgument, error.message)
        }
        log.appendRecord(record, to: stream)
    }

    /// Appends a record with a text key (see ``append(to:key:value:partition:)``).
    public func append(to stream: StreamName, key: String, value: [UInt8], partition: Int? = nil) throws(DNAError) {
        try append(to: stream, key: Array(key.utf8), value: value, partition: partition)
    }

    /// The in-memory state the actor's previous activation handed over when it moved here
    /// (``DurableActor/stateToHandOver()``), decoded as `type`; `nil` when it did not move
    /// or handed nothing over. Read it in the initialiser: it is deleted from the store with
    /// the activation's first commit.
    ///
    /// - Throws: ``DNAError/Code/invalidArgument`` if what was handed over is not a `type`.
    public func handedOverState<State: Decodable>(_ type: State.Type) throws(DNAError) -> State? {
        guard let handedOverBytes else { return nil }
        do { return try CompactDecoder.decode(State.self, from: handedOverBytes) } catch {
            throw DNAError(.invalidArgument, "\(id): the state handed over is not a \(State.self): \(error)")
        }
    }

    /// Sets the durable alarm `name` (1 to 64 bytes) to go off at `date`, and then every
    /// `interval` if given: ``DurableActor/alarm(_:context:)`` runs then, on whichever node
    /// owns the actor. Setting an alarm that exists moves it. Names are told apart by their
    /// UTF-8 bytes, as actor keys are: `"é"` precomposed (NFC) and decomposed (NFD) name two
    /// alarms, though Swift's `==` calls them equal. Stored with the current
    /// batch: a message that throws leaves the alarms as they were. A time in the past
    /// fires at once. A repeating alarm that missed times (the cluster was down) fires
    /// once, and then at the next time still ahead: missed times are not made up.
    ///
    /// - Throws: ``DNAError/Code/invalidArgument`` for a name that is empty or too long, an
    ///   interval under ``minAlarmInterval``, or more than ``maxAlarms`` alarms.
    public func setAlarm(_ name: String, at date: WallClockTime, repeating interval: Duration? = nil) throws(DNAError) {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            throw DNAError(.invalidArgument, "an alarm name is 1 to 64 bytes, got \(name.utf8.count)")
        }
        if let interval, interval < Self.minAlarmInterval {
            throw DNAError(.invalidArgument, "an alarm repeats at most once a second, got every \(interval)")
        }
        guard alarmSchedule[name] != nil || alarmSchedule.count < Self.maxAlarms else {
            throw DNAError(.invalidArgument, "\(id) has \(Self.maxAlarms) alarms already, the most one actor may have; cancel one first")
        }
        alarmSchedule.set(name, AlarmRecord(due: date.milliseconds, interval: interval?.milliseconds ?? 0))
    }

    /// Sets the alarm `name` to go off `delay` from now (see ``setAlarm(_:at:repeating:)``).
    public func setAlarm(_ name: String, after delay: Duration, repeating interval: Duration? = nil) throws(DNAError) {
        try setAlarm(name, at: node.clock.wallNow + delay, repeating: interval)
    }

    /// Cancels the alarm `name`, with the current batch; nothing if it is not set.
    public func cancelAlarm(_ name: String) { alarmSchedule.remove(name) }

    /// When the alarm named by exactly these UTF-8 bytes goes off next; `nil` if it is not set.
    public func alarm(named name: String) -> WallClockTime? {
        schedule?[name].map { WallClockTime(milliseconds: $0.due) }
    }

    /// The alarms set now, in the order of their names' UTF-8 bytes, and when each goes off
    /// next. A list rather than a dictionary: names that Swift's `==` calls equal but whose
    /// bytes differ are two alarms.
    public var alarms: [(name: String, due: WallClockTime)] {
        (schedule?.all ?? []).map { ($0.name, WallClockTime(milliseconds: $0.alarm.due)) }
    }

    /// The node this activation runs on.
    public var nodeID: NodeID { node.id }

    /// A reference to this actor, to hand to others.
    public func ref<A: DurableActor>(as type: A.Type = A.self) throws -> ActorRef<A> {
        try node.ref(A.self, key: id.key, namespace: id.namespace)
    }

    /// Puts `message` at the end of this actor's own mailbox (an info message): it is
    /// handled after the messages already queued, as if cast by someone else.
    public func tell<R: ActorRequest>(_ message: R) throws {
        try node.cast(message, to: id)
    }

    /// Delivers `message` to this actor's own mailbox after `delay` (a timer). Pending
    /// timers keep the activation from being passivated; they end with the activation.
    @discardableResult
    public func schedule<R: ActorRequest>(_ message: R, after delay: Duration) -> ScheduledMessage {
        let node = self.node
        let id = self.id
        return timers.start(after: delay, on: node.taskExecutor) { try? node.cast(message, to: id) }
    }

    /// Asks the runtime to deactivate this actor once the current batch is committed. The
    /// next message activates it again from its stored data.
    public func deactivate() { deactivationRequested = true }
}

/// A message scheduled with ``ActorContext/schedule(_:after:)``.
public struct ScheduledMessage: Sendable {
    let id: Int
    let timers: TimerSet

    /// Cancels delivery if it has not happened yet.
    public func cancel() { timers.cancel(id) }
}

/// The pending timers of one activation.
final class TimerSet: Sendable {
    private let clock: any DNAClock
    private let state = Mutex<(next: Int, tasks: [Int: Task<Void, Never>])>((0, [:]))

    init(clock: any DNAClock) { self.clock = clock }

    var isEmpty: Bool { state.withLock { $0.tasks.isEmpty } }

    /// `executor`: the node's (``Node/taskExecutor``), passed here rather than kept: one
    /// set per activation.
    func start(after delay: Duration, on executor: (any TaskExecutor)?, _ fire: @escaping @Sendable () -> Void) -> ScheduledMessage {
        state.withLock { state in
            let id = state.next
            state.next += 1
            let deadline = clock.now + delay
            let clock = self.clock
            state.tasks[id] = Task(executorPreference: executor) { [weak self] in
                try? await clock.sleep(until: deadline)
                guard let self, self.state.withLock({ $0.tasks.removeValue(forKey: id) }) != nil else { return }
                fire()
            }
            return ScheduledMessage(id: id, timers: self)
        }
    }

    func cancel(_ id: Int) {
        state.withLock { $0.tasks.removeValue(forKey: id) }?.cancel()
    }

    func cancelAll() {
        let tasks = state.withLock { state in
            defer { state.tasks = [:] }
            return state.tasks.values
        }
        for task in tasks { task.cancel() }
    }
}
