import DNAStore
import Logging

extension Node {
    /// An alarm found due soon, waiting for its time.
    private struct PendingFire {
        var actor: ActorID
        var name: String
        var due: Int64
        /// The store has the name at this node.
        var ownedHere: Bool
    }

    /// An alarm's row: its actor and its name's bytes (the store's key; names that Swift's
    /// `==` calls equal may be two rows).
    private struct AlarmKey: Hashable {
        var actor: ActorID
        var name: KeyIdentity

        init(actor: ActorID, name: String) {
            self.actor = actor
            self.name = .utf8(name)
        }
    }

    /// Reads the alarms due within the next two poll intervals from the store (an index on
    /// the due time: no actor is visited), keeps those this node fires — of actors it owns,
    /// and of names without a live owner that the rendezvous hash gives it — and sends each
    /// an ``AlarmFire`` at its time. A fire not handled within `resendAfter` (its row still
    /// due: the message or its node was lost) is sent again; the activation ignores a fire
    /// for an alarm that has moved on, so the handler runs once per time, at least once.
    func alarmLoop() async {
        let poll = configuration.alarmPollInterval.milliseconds
        let resendAfter = max(poll * 4, 5_000)
        var pending: [PendingFire] = []
        var sent: [AlarmKey: (due: Int64, at: Int64)] = [:]
        var nextScan: Int64 = 0
        while !Task.isCancelled {
            var now = clock.wallNow.milliseconds
            if now >= nextScan {
                nextScan = now + poll
                do {
                    let due = try await store.dueAlarms(before: now + 2 * poll, limit: 10_000)
                    var queued = Set(pending.map { AlarmKey(actor: $0.actor, name: $0.name) })
                    for alarm in due where firesHere(alarm) {
                        let key = AlarmKey(actor: alarm.actor, name: alarm.name)
                        if let last = sent[key], last.due == alarm.due, now - last.at < resendAfter { continue }
                        guard queued.insert(key).inserted else { continue }
                        pending.append(PendingFire(actor: alarm.actor, name: alarm.name, due: alarm.due, ownedHere: alarm.owner == id))
                    }
                    pending.sort { $0.due < $1.due }
                } catch {
                    logger.debug("could not read due alarms", metadata: ["error": "\(error)"])
                }
                sent = sent.filter { now - $0.value.at < resendAfter }
            }
            now = clock.wallNow.milliseconds
            while let first = pending.first, first.due <= now {
                pending.removeFirst()
                fire(first.actor, alarm: first.name, due: first.due, ownedHere: first.ownedHere)
                sent[AlarmKey(actor: first.actor, name: first.name)] = (first.due, now)
            }
            let wake = min(nextScan, pending.first?.due ?? nextScan)
            do { try await clock.sleep(for: .milliseconds(max(1, wake - clock.wallNow.milliseconds))) } catch { return }
        }
    }

    private func firesHere(_ alarm: DueAlarm) -> Bool {
        guard kinds[alarm.actor.kind] != nil else { return false }
        if let owner = alarm.owner { return owner == id }
        guard transport != nil else { return true }
        if lifeSnapshot.drained { return false }
        // Of the live nodes, the one the rendezvous hash picks (nil: this one).
        return membership.placement(of: alarm.actor, this: id) == nil
    }

    /// `ownedHere`: the store has the name at this node, so a local activation claims it
    /// whatever this node's location cache says (a stale entry would forward the fire away
    /// from the owner, for ever).
    private func fire(_ actor: ActorID, alarm name: String, due: Int64, ownedHere: Bool) {
        guard let kind = kinds[actor.kind] else { return }
        let envelope = Envelope(
            requestType: ObjectIdentifier(AlarmFire.self), message: MessageBox(AlarmFire(name: name, due: due)), reply: nil)
        do { try deliver(envelope, to: actor, kind: kind, claimHere: ownedHere) } catch {
            // Sent again at the next read while it is still due.
            logger.debug("could not send an alarm", metadata: ["actor": "\(actor)", "alarm": "\(name)", "error": "\(error)"])
        }
    }
}
