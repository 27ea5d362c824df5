/// The per-origin order of an activation, a part of ``ActivationStateMachine``: the latest
/// message handled from each origin (node), so that a message overtaken by a later one of
/// its origin is refused rather than applied out of order; whether that changed since it was
/// last stored; and whether a stop waits for it to be stored.
///
/// Most actors hear from one origin (their own node's): that one is kept inline, so an idle
/// activation holds no dictionary, and the flags sit in the inline entry's padding.
///
/// **An origin new to the activation.** A message of an origin this activation has not
/// yet stored the order of may have been overtaken by nothing here and still have earlier
/// messages of its origin under way elsewhere: queued at a former owner that was paused,
/// or on a link to it. If this activation answered it from memory (a read) and then died
/// or was fenced before storing its order, the next owner would handle those earlier
/// messages after the answered one. So the batch that first handles an origin stores the
/// order before its replies go out (``mustStoreBeforeAnswering``): with its writes, or in
/// a commit of its own when it wrote nothing — once per origin per activation.
struct OriginOrder {
    private var firstOrigin = UInt32.max
    /// The inline origin's order was stored by this activation (or is in the batch being
    /// handled, whose replies wait for it).
    private var firstStored = false
    /// A batch handled an origin whose order this activation has not stored: its replies
    /// wait for the order to be durable.
    private(set) var mustStoreBeforeAnswering = false
    /// The latest of some origin changed since the last ``takeChanged()``: it is stored with
    /// the next batch that writes, so that a later activation of the name still refuses
    /// what this one's messages overtook.
    private(set) var changed = false
    /// A stop waits for the order to be stored (``ActivationStateMachine/stopIfIdle(since:hasTimers:)``).
    var storeRequested = false
    private var firstLatest: UInt64 = 0
    private var others: [UInt32: UInt64] = [:]
    /// The other origins whose order this activation stored (as ``firstStored``).
    private var othersStored: Set<UInt32> = []

    /// At most this many origins are stored (the ones learned first are dropped).
    static var maxOrigins: Int { 512 }

    /// The latest message handled from `origin`; 0 for an origin not heard from.
    subscript(origin: UInt32) -> UInt64 {
        get { origin == firstOrigin ? firstLatest : (others.isEmpty ? 0 : others[origin] ?? 0) }
        set {
            if origin == firstOrigin || firstOrigin == .max {
                firstOrigin = origin
                firstLatest = newValue
            } else {
                others[origin] = newValue
            }
        }
    }

    /// Splits a batch into the messages later than every message of their origin handled
    /// so far, and those overtaken by one (refused); the accepted become the latest. A
    /// message without a sequence (0) is always accepted. Nothing is copied when none is
    /// refused.
    mutating func inOrder<Message: OrderedMessage>(_ batch: [Message]) -> (batch: [Message], refused: [Message]) {
        let split = splitInOrder(batch)
        if storesNewOrigins { noteOrigins(of: split.batch) }
        return split
    }

    /// Whether an origin's first batch in an activation waits for its order to be stored
    /// (only in a cluster: a node alone is the only origin, and no other owner exists).
    var storesNewOrigins = false

    /// Notes the origins of an accepted batch: one not stored by this activation yet makes
    /// the batch store the order before it answers.
    private mutating func noteOrigins<Message: OrderedMessage>(of batch: [Message]) {
        var last = UInt32.max
        for message in batch where message.sequence != 0 && message.origin != last {
            last = message.origin
            if message.origin == firstOrigin {
                if !firstStored {
                    firstStored = true
                    mustStoreBeforeAnswering = true
                }
            } else if othersStored.insert(message.origin).inserted {
                mustStoreBeforeAnswering = true
            }
        }
    }

    /// The batch that must store the order before answering takes it (``takeChanged()``).
    mutating func storingBeforeAnswering() -> Bool {
        defer { mustStoreBeforeAnswering = false }
        return mustStoreBeforeAnswering
    }

    /// A new activation of the name (after a claim) has stored nothing yet.
    mutating func forgetStored() {
        firstStored = false
        othersStored = []
        mustStoreBeforeAnswering = false
    }

    private mutating func splitInOrder<Message: OrderedMessage>(_ batch: [Message]) -> (batch: [Message], refused: [Message]) {
        var origin = UInt32.max
        var high: UInt64 = 0
        var firstRefused: Int?
        for (index, message) in batch.enumerated() where message.sequence != 0 {
            if message.origin != origin {
                if origin != .max { self[origin] = high }
                origin = message.origin
                high = self[origin]
            }
            if message.sequence > high {
                high = message.sequence
            } else {
                firstRefused = index
                break
            }
        }
        if origin != .max {
            self[origin] = high
            changed = true
        }
        guard let firstRefused else { return (batch, []) }
        var accepted = Array(batch[..<firstRefused])
        var refused = [batch[firstRefused]]
        for message in batch[(firstRefused + 1)...] {
            if message.sequence == 0 {
                accepted.append(message)
                continue
            }
            if message.sequence > self[message.origin] {
                self[message.origin] = message.sequence
                accepted.append(message)
            } else {
                refused.append(message)
            }
        }
        return (accepted, refused)
    }

    /// Whether `message` was overtaken by a message of its origin handled already (it would
    /// be refused if it were handled now).
    func overtaken<Message: OrderedMessage>(_ message: Message) -> Bool {
        message.sequence != 0 && message.sequence <= self[message.origin]
    }

    /// Every origin with its latest, by origin, if that changed since the last call (then
    /// at most ``maxOrigins``: the first heard from, then the highest-numbered).
    mutating func takeChanged() -> [(origin: UInt32, sequence: UInt64)]? {
        guard changed else { return nil }
        changed = false
        keepAtMost(Self.maxOrigins)
        var all = others.map { (origin: $0.key, sequence: $0.value) }
        if firstOrigin != .max { all.append((firstOrigin, firstLatest)) }
        return all.sorted { $0.origin < $1.origin }
    }

    /// Latest messages per origin as an earlier activation of the name stored them.
    mutating func restore(_ stored: [(origin: UInt32, sequence: UInt64)]) {
        for (origin, sequence) in stored where sequence > self[origin] { self[origin] = sequence }
    }

    private mutating func keepAtMost(_ limit: Int) {
        let count = others.count + (firstOrigin == .max ? 0 : 1)
        guard count > limit else { return }
        for origin in others.keys.sorted().prefix(count - limit) {
            others[origin] = nil
            othersStored.remove(origin)
        }
    }
}
