import DNACommandSupport
import ArgumentParser
import DNA
import DNAExamples
import DNAPostgres
import DNAPrometheus
import DNATLS
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Print a cluster's nodes (state, heartbeat age, activations, labels); --kinds counts names per kind and node, --actors lists a kind's names."
    )

    @OptionGroup var location: StoreLocation
    var store: String { location.store ?? "" }
    var cluster: String { location.cluster }

    @Option(help: "Also list the registered names of this actor kind, with owner and epoch.")
    var actors: String?

    @Flag(help: "Also count the registered names per actor kind and owner node.")
    var kinds = false

    @Option(help: "The most names to list (and, with --kinds, to count).")
    var limit: Int = 1000

    func run() async throws {
        try bootstrapLogging("error")
        try await withExistingStore(store) { store in try await report(store) }
    }

    private func report(_ store: any ActorStore) async throws {
        let nodes = try await store.nodes(cluster: cluster)
        print("cluster \(cluster): \(nodes.count) node(s)")
        print(pad("NODE", 34) + pad("ADDRESS", 24) + pad("HEARTBEAT AGE", 15) + pad("STATE", 9) + pad("ACTIVATIONS", 13) + "LABELS")
        for node in nodes.sorted(by: { $0.heartbeatAgeMilliseconds < $1.heartbeatAgeMilliseconds }) {
            let age = String(format: "%.1fs", Double(node.heartbeatAgeMilliseconds) / 1000)
            let state = node.isAlive ? node.state.rawValue : node.state == .left ? "left" : "dead"
            print(
                pad(node.id.rawValue, 34) + pad(node.address, 24) + pad(age, 15) + pad(state, 9) + pad("\(node.activations)", 13)
                    + node.labels.joined(separator: ","))
        }
        if kinds {
            let names = try await store.registrations(kind: nil, limit: limit)
            var counts: [String: [String: Int]] = [:]
            for name in names { counts[name.actor.kind, default: [:]][name.owner?.rawValue ?? "-", default: 0] += 1 }
            print("\nnames by kind and owner (\(names.count) read\(names.count == limit ? ", limit reached: raise --limit" : ""))")
            print(pad("KIND", 24) + pad("OWNER", 34) + "NAMES")
            for kind in counts.keys.sorted() {
                for (owner, count) in counts[kind]!.sorted(by: { $0.key < $1.key }) { print(pad(kind, 24) + pad(owner, 34) + "\(count)") }
            }
        }
        if let kind = actors {
            let names = try await store.registrations(kind: kind, limit: limit)
            print("\nactors of kind \(kind): \(names.count)\(names.count == limit ? " (limit reached)" : "")")
            print(pad("NAMESPACE", 16) + pad("KEY", 40) + pad("OWNER", 34) + "EPOCH")
            for name in names {
                print(pad(name.actor.namespace, 16) + pad(name.actor.key, 40) + pad(name.owner?.rawValue ?? "-", 34) + "\(name.epoch)")
            }
        }
    }

}

struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Ask a node to drain: it moves its actors to the other live nodes and leaves. Waits, then prints what moved.",
        discussion: """
            The request goes through the store (the node's row becomes `draining`); the node \
            sees it at its next membership read (within a heartbeat interval), takes no new \
            names, hands every activation over to the other live nodes, and stops. Under a \
            process supervisor the node's process then exits.
            """)

    @OptionGroup var location: StoreLocation
    var store: String { location.store ?? "" }
    var cluster: String { location.cluster }

    @Option(help: "The node to drain: its id or its HOST:PORT.")
    var node: String

    @Option(help: "Seconds to wait for the node to leave.")
    var timeout: Double = 120

    func run() async throws {
        try bootstrapLogging("error")
        let (cluster, name, timeout) = (self.cluster, self.node, self.timeout)
        try await withExistingStore(store) { store in
            let nodes = try await store.nodes(cluster: cluster)
            let matching = nodes.filter { $0.id.rawValue == name || $0.address == name }
            guard let target = matching.first(where: \.isAlive) ?? matching.first else {
                throw ValidationError("no node \(name) in cluster \(cluster)")
            }
            guard target.isAlive else {
                throw ValidationError(
                    "node \(target.id) (\(target.address)) is not alive (\(target.state.rawValue), last heartbeat \(target.heartbeatAgeMilliseconds) ms ago): nothing to drain"
                )
            }
            let others = nodes.filter { $0.isAlive && $0.state == .up && $0.id != target.id }
            guard !others.isEmpty else {
                throw ValidationError("node \(target.id) is the last live node of cluster \(cluster) taking actors: nowhere to drain to")
            }
            let start = ContinuousClock.now
            if target.state == .up {
                try await store.requestDrain(node: target.id)
                print("asked node \(target.id) (\(target.address)) to drain; it hosts \(target.activations) activation(s)")
            } else {
                print("node \(target.id) (\(target.address)) is \(target.state.rawValue) already; waiting for it to leave")
            }
            while true {
                try await Task.sleep(for: .milliseconds(200))
                let now = try await store.nodes(cluster: cluster)
                let seconds = String(format: "%.1f", (ContinuousClock.now - start) / .seconds(1))
                guard let row = now.first(where: { $0.id == target.id }) else {
                    print("node \(target.id) is gone from the cluster after \(seconds) s")
                    return
                }
                if row.state == .left {
                    print("drained node \(target.id) in \(seconds) s: \(target.activations) activation(s) moved")
                    for other in now where other.isAlive && other.id != target.id {
                        print("  \(other.id) (\(other.address)): \(other.activations) activation(s)")
                    }
                    return
                }
                guard row.isAlive else {
                    throw ValidationError(
                        "node \(target.id) died while draining (after \(seconds) s); its names are taken over as after any failure")
                }
                guard ContinuousClock.now - start < .milliseconds(Int64(timeout * 1000)) else {
                    throw ValidationError(
                        "node \(target.id) did not leave within \(Int(timeout)) s (state \(row.state.rawValue), \(row.activations) activation(s) left)"
                    )
                }
            }
        }
    }
}

struct RebalanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebalance",
        abstract: "Make one round of rebalancing now, or print the moves a round would make (--dry-run).",
        discussion: """
            Every eligible live node gets its fair share of the activations (within one of each \
            other); draining nodes give all theirs away; a round moves at most --max-moves and \
            --max-fraction of all activations. Counts are those the nodes reported with their \
            last heartbeat. Without --dry-run, every up node is asked through the store to make \
            a round now with its own settings (limits, excluded labels); the command waits \
            until all have, and prints the loads before and after.
            """)

    @OptionGroup var location: StoreLocation
    var store: String { location.store ?? "" }
    var cluster: String { location.cluster }

    @Flag(help: "Print the moves a round would make; move nothing.")
    var dryRun = false

    @Option(help: "At most this many activations move in one round.")
    var maxMoves: Int = RebalancePlanner.Limits().maxMoves

    @Option(help: "At most this fraction of all activations moves in one round, in (0, 1].")
    var maxFraction: Double = RebalancePlanner.Limits().maxFraction

    @Option(
        name: .customLong("exclude"),
        help: "With --dry-run: a node (id or HOST:PORT) to leave alone: it neither gives nor takes. Repeatable.")
    var excluded: [String] = []

    @Option(help: "Seconds to wait for the nodes to make their round.")
    var timeout: Double = 60

    func validate() throws {
        guard
            dryRun
                || (excluded.isEmpty && maxMoves == RebalancePlanner.Limits().maxMoves
                    && maxFraction == RebalancePlanner.Limits().maxFraction)
        else {
            throw ValidationError(
                "--exclude, --max-moves and --max-fraction shape a --dry-run only: nodes make their rounds with their own settings")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be more than 0") }
    }

    func run() async throws {
        try bootstrapLogging("error")
        if !dryRun {
            try await withExistingStore(store) { store in try await rebalanceNow(store) }
            return
        }
        try await withExistingStore(store) { store in
            let records = try await store.nodes(cluster: cluster).filter(\.isAlive)
            let unknown = excluded.filter { name in !records.contains { $0.id.rawValue == name || $0.address == name } }
            guard unknown.isEmpty else {
                throw ValidationError("no live node \(unknown.joined(separator: ", ")) in cluster \(cluster)")
            }
            let loads = records.map { record in
                let role: RebalancePlanner.Role =
                    excluded.contains(record.id.rawValue) || excluded.contains(record.address) || record.state == .joining
                    ? .excluded : record.state == .draining ? .draining : .eligible
                return RebalancePlanner.NodeLoad(id: record.id, activations: Int(record.activations), role: role)
            }
            let plan = try RebalancePlanner.plan(
                nodes: loads, limits: RebalancePlanner.Limits(maxMoves: maxMoves, maxFraction: maxFraction))
            print(Self.describe(plan, loads: loads, records: records, cluster: cluster))
        }
    }

    /// Asks every up node for a round and waits until all have made it.
    private func rebalanceNow(_ store: any MembershipStore) async throws {
        let before = try await store.nodes(cluster: cluster).filter(\.isAlive)
        guard before.contains(where: { $0.state == .up }) else {
            throw ValidationError("no live node of cluster \(cluster) takes actors: nothing to rebalance")
        }
        let start = ContinuousClock.now
        let asked = try await store.requestRebalance(cluster: cluster)
        print("asked \(asked) node(s) of cluster \(cluster) for a rebalancing round")
        let deadline = start + .milliseconds(Int64(timeout * 1000))
        var records = before
        while true {
            records = try await store.nodes(cluster: cluster)
            let waiting = records.filter { $0.rebalanceRequested && $0.isAlive }
            if waiting.isEmpty { break }
            guard ContinuousClock.now < deadline else {
                throw ValidationError(
                    "\(waiting.count) node(s) had not made their round after \(timeout) s: \(waiting.map(\.address).joined(separator: ", "))"
                )
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Their counts as of the heartbeat each wrote right after its round.
        let elapsed = ContinuousClock.now - start
        print(pad("NODE", 34) + pad("ADDRESS", 24) + pad("BEFORE", 10) + "AFTER")
        for record in records.filter(\.isAlive).sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
            let old = before.first { $0.id == record.id }.map { "\($0.activations)" } ?? "-"
            print(pad(record.id.rawValue, 34) + pad(record.address, 24) + pad(old, 10) + "\(record.activations)")
        }
        print(String(format: "round made in %.1f s", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
    }

    static func describe(
        _ plan: RebalancePlanner.Plan, loads: [RebalancePlanner.NodeLoad], records: [NodeRecord], cluster: String
    ) -> String {
        var lines = ["cluster \(cluster): \(loads.count) live node(s), \(loads.reduce(0) { $0 + $1.activations }) activation(s)"]
        lines.append(pad("NODE", 34) + pad("ADDRESS", 24) + pad("ROLE", 10) + pad("NOW", 10) + "SHARE")
        for load in loads.sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
            let address = records.first { $0.id == load.id }?.address ?? "-"
            let share = plan.shares[load.id].map(String.init) ?? (load.role == .draining ? "0" : "-")
            lines.append(pad(load.id.rawValue, 34) + pad(address, 24) + pad("\(load.role)", 10) + pad("\(load.activations)", 10) + share)
        }
        if plan.isBalanced {
            lines.append("balanced: nothing to move")
            return lines.joined(separator: "\n")
        }
        for move in plan.moves { lines.append("move \(move.count) from \(move.from) to \(move.to.rawValue)") }
        lines.append(
            "this round: \(plan.moved) move(s)"
                + (plan.remaining > 0 ? "; \(plan.remaining) more in later rounds (held back by the per-round limits)" : ""))
        return lines.joined(separator: "\n")
    }
}

struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Talk to a KV actor through any node: put KEY VALUE, get KEY, list [PREFIX]. Secret from DNA_CLUSTER_SECRET.")

    enum Operation: String, ExpressibleByArgument {
        case put, get, list
    }

    @Argument(help: "put, get or list.")
    var operation: Operation

    @Option(help: "A node of the cluster, HOST:PORT.")
    var node: String

    @Option(help: "The KV actor's name (key).")
    var actor: String

    @Option(help: "The cluster name.")
    var cluster: String = "local"

    @Option(help: "The actor's namespace.")
    var namespace: String = "default"

    @Argument(help: "The key (put, get) or prefix (list).")
    var key: String?

    @Argument(help: "The value (put).")
    var value: String?

    @Option(help: "The most entries list prints (1 to 1000).")
    var limit: Int = 100

    @OptionGroup var tls: TLSOptions

    func run() async throws {
        try bootstrapLogging("error")
        let client = try ClusterClient(
            cluster: cluster, secret: try clusterSecret(), node: try PeerAddress(parsing: node), tls: try tls.configuration())
        do {
            switch operation {
            case .put:
                guard let key, let value else { throw ValidationError("put needs KEY and VALUE") }
                try await client.call(KVActor.Put(key: key, value: value), kind: "kv", key: actor, namespace: namespace)
                print("OK")
            case .get:
                guard let key else { throw ValidationError("get needs KEY") }
                if let value = try await client.call(KVActor.Get(key: key), kind: "kv", key: actor, namespace: namespace) {
                    print(value)
                } else {
                    print("(nil)")
                    await client.shutdown()
                    throw ExitCode(1)
                }
            case .list:
                let entries = try await client.call(
                    KVActor.List(prefix: key ?? "", limit: limit), kind: "kv", key: actor, namespace: namespace)
                for entry in entries { print("\(entry.key)\t\(entry.value)") }
            }
        } catch let error as DNAError {
            await client.shutdown()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(error.isRetryable ? 75 : 1)  // 75: EX_TEMPFAIL, try again
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }
}
