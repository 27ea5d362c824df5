/// A call or cast a client of the runtime simulation made to a `SimulatedRegister`, and
/// what it was told.
package struct RegisterOperation: Sendable {
    package enum Kind: Sendable { case read, append, cast, arm }
    package var kind: Kind
    package var actor: Int
    /// The id appended (empty for reads).
    package var value: String
    package var slot: Int
    package var incarnation: Int
    package var invoked: Int64
    package var responded: Int64?
    /// The log it was answered with.
    package var result: [String]?
    /// The code of the error it was answered with.
    package var error: String?
    /// The client that sent it (0: none in particular); a client sends one call at a time.
    package var client: Int

    package init(
        kind: Kind, actor: Int, value: String, slot: Int, incarnation: Int, invoked: Int64, responded: Int64? = nil,
        result: [String]? = nil, error: String? = nil, client: Int = 0
    ) {
        self.client = client
        self.kind = kind
        self.actor = actor
        self.value = value
        self.slot = slot
        self.incarnation = incarnation
        self.invoked = invoked
        self.responded = responded
        self.result = result
        self.error = error
    }

    var summary: String {
        let what: String
        switch kind {
        case .read: what = "read"
        case .append: what = "append \(value)"
        case .cast: what = "cast \(value)"
        case .arm: what = "alarm \(value)"
        }
        let answered = responded.map { "answered at \(Duration.nanoseconds($0))" } ?? "unanswered"
        return "\(what) from n\(slot).\(incarnation) sent at \(Duration.nanoseconds(invoked)), \(answered)\(error.map { " (\($0))" } ?? "")"
    }
}

/// What the clients of one register were told, against what a linearizable log allows:
/// every log answered is a prefix of a longer one (one history), no call saw less than a
/// call answered before it was sent (real time), an acknowledged append is in the log it
/// was answered with (at its end) and in the final log, nothing is in the final log twice,
/// nothing told "certainly not applied" is in it, every alarm acknowledged went off (its
/// entry is in the final log), every call to a process still running
/// was answered, and each node's messages were handled in the order it sent them (its
/// appends and casts are in the log in that order, and what it sent before a call, if
/// applied, is in that call's answer).
package enum RegisterHistory {
    package static func firstViolation(
        actor name: String, operations: [RegisterOperation], final: [String], certainlyNotApplied: Set<String>,
        isRunning: (_ slot: Int, _ incarnation: Int) -> Bool
    ) -> (invariant: String, detail: String)? {
        var seen: Set<String> = []
        for value in final where !seen.insert(value).inserted {
            return ("applied twice", "\(name): \(value) is in the final log twice")
        }
        let answered = operations.filter { $0.result != nil }
        let byLength = answered.sorted { $0.result!.count < $1.result!.count }
        for (shorter, longer) in zip(byLength, byLength.dropFirst()) where !longer.result!.starts(with: shorter.result!) {
            return (
                "divergent logs",
                "\(name): \(shorter.summary) saw …\(shorter.result!.suffix(3)) (\(shorter.result!.count)), \(longer.summary) saw …\(longer.result!.suffix(3)) (\(longer.result!.count)), not its continuation"
            )
        }
        let byResponse = answered.sorted { $0.responded! < $1.responded! }
        var next = 0
        var longest: RegisterOperation?
        for operation in answered.sorted(by: { $0.invoked < $1.invoked }) {
            while next < byResponse.count, byResponse[next].responded! < operation.invoked {
                if byResponse[next].result!.count > longest?.result!.count ?? -1 { longest = byResponse[next] }
                next += 1
            }
            if let longest, operation.result!.count < longest.result!.count {
                return (
                    "stale answer",
                    "\(name): \(operation.summary) saw \(operation.result!.count) appends, but \(longest.summary), answered before it was sent, saw \(longest.result!.count)"
                )
            }
        }
        let finalSet = Set(final)
        for operation in operations {
            if operation.kind == .append {
                if let log = operation.result, log.last != operation.value {
                    return ("wrong answer", "\(name): \(operation.summary) was answered with a log that does not end with it")
                }
                if operation.result != nil, !finalSet.contains(operation.value) {
                    return ("lost write", "\(name): \(operation.summary) was acknowledged, and is not in the final log")
                }
                if let code = operation.error, certainlyNotApplied.contains(code), finalSet.contains(operation.value) {
                    return ("failed but applied", "\(name): \(operation.summary) was told \(code), and is in the final log")
                }
            }
            if operation.kind == .arm {
                let fired = finalSet.contains(SimulatedRegister.alarmEntry(operation.value))
                if operation.result != nil, !fired {
                    return ("alarm lost", "\(name): \(operation.summary) was acknowledged, and never went off")
                }
                if let code = operation.error, certainlyNotApplied.contains(code), fired {
                    return ("failed but applied", "\(name): \(operation.summary) was told \(code), and went off")
                }
            }
            if operation.kind != .cast, operation.responded == nil, isRunning(operation.slot, operation.incarnation) {
                return ("unanswered", "\(name): \(operation.summary) was never answered, and its process still runs")
            }
        }
        if let longest = byLength.last, !final.starts(with: longest.result!) {
            return ("divergent logs", "\(name): \(longest.summary) saw a log the final log (\(final.count)) does not continue")
        }
        // Order per sender: a node numbers what it sends (its clients' messages, in the order
        // they were sent), and an actor handles each node's messages in that order.
        var position: [String: Int] = [:]
        for (index, value) in final.enumerated() { position[value] = index }
        struct Origin: Hashable, Comparable {
            var slot: Int
            var incarnation: Int
            static func < (a: Origin, b: Origin) -> Bool { (a.slot, a.incarnation) < (b.slot, b.incarnation) }
        }
        var byOrigin: [Origin: [RegisterOperation]] = [:]
        for operation in operations where operation.client != 0 {
            byOrigin[Origin(slot: operation.slot, incarnation: operation.incarnation), default: []].append(operation)
        }
        for origin in byOrigin.keys.sorted() {
            let sent = byOrigin[origin]!.sorted { $0.invoked < $1.invoked }
            var lastApplied: RegisterOperation?
            var appliedBefore: [RegisterOperation] = []
            var index = 0
            while index < sent.count {
                // Messages sent at one instant have no order between them.
                var end = index
                while end < sent.count, sent[end].invoked == sent[index].invoked { end += 1 }
                let group = sent[index..<end]
                for operation in group {
                    guard let log = operation.result else { continue }
                    let seen = Set(log)
                    if let missing = appliedBefore.first(where: { !seen.contains($0.value) }) {
                        return (
                            "out of order",
                            "\(name): \(operation.summary) did not see \(missing.summary), sent before it from the same node and applied"
                        )
                    }
                }
                for operation in group {
                    guard operation.kind == .append || operation.kind == .cast, let at = position[operation.value] else { continue }
                    if let lastApplied, position[lastApplied.value]! > at {
                        return (
                            "out of order",
                            "\(name): \(operation.summary) was applied before \(lastApplied.summary), sent before it from the same node"
                        )
                    }
                }
                for operation in group where operation.kind == .append || operation.kind == .cast {
                    guard let at = position[operation.value] else { continue }
                    if position[lastApplied?.value ?? ""].map({ $0 < at }) ?? true { lastApplied = operation }
                    appliedBefore.append(operation)
                }
                index = end
            }
        }
        return nil
    }
}
