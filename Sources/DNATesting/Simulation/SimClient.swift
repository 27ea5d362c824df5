import DNA
import DNAStore

/// A caller on a simulated node: casts writes in bursts, calls writes (retrying one that
/// certainly did not happen, with a new attempt number), and reads, one call at a time.
final class SimClient {
    unowned let node: SimNode
    let name: String
    private var sequences: [ActorID: Int] = [:]
    /// The call it waits for, if any.
    private(set) var waitingFor: Int?
    private var retry: (actor: ActorID, sequence: Int, attempt: Int)?

    init(node: SimNode, name: String) {
        self.node = node
        self.name = name
    }

    private var simulation: ClusterSimulation { node.simulation }

    func start() { next() }

    private func next() {
        let delay = simulation.random.duration(.milliseconds(5), .milliseconds(300))
        node.clientAfter(delay, "\(name) acts") { [self] in act() }
    }

    private func act() {
        guard simulation.inFaultyPhase else { return }
        if let retry {
            self.retry = nil
            call(.write(sender: name, sequence: retry.sequence, attempt: retry.attempt), to: retry.actor)
            return
        }
        let actor = ActorID(
            namespace: "sim", kind: "register", key: "a\(Int.random(in: 0..<simulation.configuration.actors, using: &simulation.random))")
        switch Int.random(in: 0..<100, using: &simulation.random) {
        case 0..<45:
            for _ in 0..<Int.random(in: 1...6, using: &simulation.random) {
                node.cast(.write(sender: name, sequence: nextSequence(actor), attempt: 1), to: actor)
                simulation.count("cast")
            }
            if simulation.random.chance(0.5) {
                call(.write(sender: name, sequence: nextSequence(actor), attempt: 1), to: actor)
            } else {
                next()
            }
        case 45..<75:
            call(.write(sender: name, sequence: nextSequence(actor), attempt: 1), to: actor)
        case 75..<90:
            call(.read, to: actor)
        default:
            call(.gatedRead, to: actor)
        }
    }

    private func nextSequence(_ actor: ActorID) -> Int {
        let sequence = (sequences[actor] ?? 0) + 1
        sequences[actor] = sequence
        return sequence
    }

    private func call(_ request: SimRequest, to actor: ActorID) {
        let id = simulation.nextCallID
        simulation.nextCallID += 1
        simulation.calls[id] = CallRecord(slot: node.slot, actor: actor, request: request, key: request.key, sentAt: simulation.now)
        simulation.clients[id] = self
        waitingFor = id
        simulation.count("call")
        simulation.trace("\(name) calls \(id): \(request) to \(actor)")
        node.call(request, to: actor, id: id)
    }

    /// The answer to call `id`.
    func answered(_ id: Int, _ result: SimResult, request: SimRequest, actor: ActorID) {
        guard waitingFor == id else { return }
        waitingFor = nil
        if case .failure(let code, _) = result, case .write(_, let sequence, let attempt) = request,
            ClusterSimulation.certainlyNotApplied.contains(code)
        {
            retry = (actor, sequence, attempt + 1)
        }
        next()
    }
}

extension ClusterSimulation {
    /// The last write to `actor` acknowledged before `time`.
    func lastAcknowledged(_ actor: ActorID, before time: Int64) -> (at: Int64, key: String)? {
        guard let writes = acknowledgedWrites[actor] else { return nil }
        var low = 0
        var high = writes.count
        while low < high {
            let middle = (low + high) / 2
            if writes[middle].at < time { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : writes[low - 1]
    }

    /// Error codes that say the request did not happen: a client may send it again.
    static let certainlyNotApplied: Set<String> = [
        DNAError.Code.fenced.name, DNAError.Code.commitFailed.name, DNAError.Code.mailboxFull.name,
        DNAError.Code.overloaded.name, DNAError.Code.ownedElsewhere.name, DNAError.Code.routingFailed.name,
        DNAError.Code.activationFailed.name, DNAError.Code.outOfOrder.name,
    ]

    /// A call got its answer.
    func answered(_ id: Int, _ result: SimResult) {
        guard var call = calls[id] else { return }
        guard case .pending = call.status else {
            violation("answered-twice", "call \(id) to \(call.actor) was answered twice")
            return
        }
        switch result {
        case .success:
            call.status = .succeeded
            count("call.succeeded")
            if let key = call.key { acknowledgedWrites[call.actor, default: []].append((now, key)) }
        case .read(let seen):
            call.status = .succeeded
            count("call.succeeded")
            // Linearizable: a write acknowledged before the read was sent is in what it saw
            // (a node answering for a name it no longer holds would miss the new owner's).
            if let write = lastAcknowledged(call.actor, before: call.sentAt), !seen.contains(write.key) {
                violation(
                    "stale-read",
                    "call \(id) (\(call.request)) to \(call.actor) from n\(call.slot), sent at \(format(call.sentAt)), missed \(write.key) acknowledged at \(format(write.at))"
                )
            }
        case .failure(let code, let message):
            call.status = .failed(code: code, message: message)
            count("call.failed.\(code)")
        }
        calls[id] = call
        trace("call \(id) (\(call.request) to \(call.actor)) → \(result)")
        clients[id]?.answered(id, result, request: call.request, actor: call.actor)
        clients[id] = nil
    }
}
