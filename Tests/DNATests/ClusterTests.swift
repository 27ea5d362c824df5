@testable import DNA
import DNAExamples
import DNAPostgres
import Foundation
import DNATestCertificates
import DNATLS
import DNATransport
import Synchronization
import DNATesting
import DNATestSupport
import Testing

/// Several nodes in this process sharing one store (SQLite file, or PostgreSQL), talking
/// over loopback TCP.
@Suite("Cluster in one process", .integration, .serialized, .timeLimit(.minutes(3)))
struct ClusterTests {
    @Test(arguments: Backend.allCases)
    func everyNodeReachesTheOneActivation(backend: Backend) async throws {
        guard let cluster = try await TestCluster.start(backend) else { return }
        let a = try cluster.nodes[0].ref(Recorder.self, key: "shared")
        try await a.call(Recorder.Put(key: "k", value: "v"))
        for node in cluster.nodes {
            let ref = try node.ref(Recorder.self, key: "shared")
            #expect(try await ref.call(Recorder.Get(key: "k")) == "v")
            #expect(try await ref.call(Recorder.Host()) == cluster.nodes[0].id.rawValue)
            #expect(try await ref.call(Recorder.Activations()) == 1)
        }
        #expect(cluster.nodes.map(\.activationCount) == [1, 0, 0])
        await cluster.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func concurrentFirstCallsFromThreeNodesMakeOneActivation(backend: Backend) async throws {
        guard let cluster = try await TestCluster.start(backend) else { return }
        let hosts = try await withThrowingTaskGroup(of: String.self) { group in
            for (index, node) in cluster.nodes.enumerated() {
                let ref = try node.ref(Recorder.self, key: "contended")
                for call in 0..<100 {
                    group.addTask {
                        try await ref.call(Recorder.Put(key: "n\(index)-\(call)", value: "x"))
                        return try await ref.call(Recorder.Host())
                    }
                }
            }
            var hosts: Set<String> = []
            for try await host in group { hosts.insert(host) }
            return hosts
        }
        #expect(hosts.count == 1, "one activation answered every call")
        let ref = try cluster.nodes[2].ref(Recorder.self, key: "contended")
        #expect(try await ref.call(Recorder.Activations()) == 1)
        #expect(try await ref.call(Recorder.Count()) == 300)
        #expect(cluster.nodes.map(\.activationCount).reduce(0, +) == 1)
        await cluster.shutdown()
    }

    @Test func theRememberedRouteMatchesOnlyTheSameBytes() {
        let route = ReceivedRoute(
            actor: ActorID(namespace: "K", kind: "kv", key: String(repeating: "\u{e9}", count: 200)), requestName: "Put",
            kind: KindRuntime(KVActor.self, placement: .firstReceiver, features: []), requestType: ObjectIdentifier(KVActor.Put.self),
            codec: RemoteCodec(for: KVActor.Put.self))
        func request(namespace: String = "K", key: String = String(repeating: "\u{e9}", count: 200)) -> WireRequest {
            WireRequest(id: 1, expectsReply: false, hops: 0, namespace: namespace, kind: "kv", key: key, requestName: "Put", payload: [])
        }
        #expect(route.matches(request()))
        // Canonically equivalent to the remembered names (so `==` says equal), but not the
        // same bytes, and not valid names themselves: the Kelvin sign, and a key of 600
        // bytes (over the limit) spelled with combining accents.
        #expect("\u{212A}" == "K")
        #expect(!route.matches(request(namespace: "\u{212A}")))
        #expect(!route.matches(request(key: String(repeating: "e\u{301}", count: 200))))
    }

    @Test func nodesConnectToTheNodesTheyDiscoverBeforeAnyCall() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        // TestCluster.start ran one discovery on every node and sent nothing.
        let addresses = try (0..<3).map { try cluster.address($0) }
        try await waitUntil(timeout: .seconds(10)) {
            cluster.nodes.indices.allSatisfy { index in
                addresses.indices.allSatisfy { peer in
                    peer == index || cluster.nodes[index].transport?.isConnected(to: addresses[peer]) == true
                }
            }
        }
        await cluster.shutdown()
    }

    /// Defect j: a node drops its link to a node that left (and no live node listens there).
    @Test func linksToNodesThatLeftAreDropped() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        let gone = try cluster.address(2)
        try await waitUntil(timeout: .seconds(10)) { cluster.nodes[0].transport?.linkedPeers.contains(gone) == true }
        await cluster.nodes[2].shutdown()
        try await waitUntil(timeout: .seconds(10)) { cluster.nodes[0].transport?.linkedPeers.contains(gone) == false }
        #expect(cluster.nodes[0].transport?.linkedPeers.contains(try cluster.address(1)) == true, "links to live nodes stay")
        await cluster.shutdown()
    }

    @Test func castsToARemoteActorKeepTheirOrder() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        _ = try await cluster.nodes[0].ref(Recorder.self, key: "ordered").call(Recorder.Activations())
        let remote = try cluster.nodes[1].ref(Recorder.self, key: "ordered")
        for number in 0..<5_000 { try remote.cast(Recorder.Seq(number: number)) }
        #expect(try await remote.call(Recorder.SeqReport()) == [4_999, 0, 5_000])
        #expect(cluster.nodes[1].activationCount == 0)
        await cluster.shutdown()
    }

    @Test func errorsFromAnotherNodeKeepTheirCode() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        _ = try await cluster.nodes[0].ref(Recorder.self, key: "errors").call(Recorder.Activations())
        let remote = try cluster.nodes[1].ref(Recorder.self, key: "errors")
        do {
            try await remote.call(Recorder.PutThenFail(key: "x", value: "y"))
            Issue.record("the handler's error must reach the caller")
        } catch let error as DNAError {
            #expect(error.code == .handlerFailed)
            #expect(error.message.contains("refused x"))
            #expect(!error.isRetryable)
        }
        #expect(try await remote.call(Recorder.Get(key: "x")) == nil, "the failed handler's write was discarded")
        await #expect(throws: DNAError.self) { try await remote.call(Recorder.Unhandled()) }

        let client = try ClusterClient(cluster: "test", secret: TestCluster.secret, node: try cluster.address(0))
        await expectCode(.unknownActorKind) { try await client.call(Recorder.Get(key: "x"), kind: "nope", key: "k", namespace: "test") }
        await expectCode(.unhandledRequest) { try await client.call(KVActor.Get(key: "x"), kind: "recorder", key: "k", namespace: "test") }
        await expectCode(.invalidName) { try await client.call(Recorder.Get(key: "x"), kind: "recorder", key: "", namespace: "test") }
        #expect(try await client.call(Recorder.Get(key: "x"), kind: "recorder", key: "errors", namespace: "test") == nil)
        await client.shutdown()
        await cluster.shutdown()
    }

    @Test func aClientWithTheWrongSecretIsRefusedAndOthersAreServed() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 1) else { return }
        let intruder = try ClusterClient(cluster: "test", secret: Array("not-the-cluster-secret-at-all".utf8), node: try cluster.address(0))
        await expectCode(.nodeUnreachable) {
            try await intruder.call(Recorder.Put(key: "a", value: "b"), kind: "recorder", key: "k", namespace: "test")
        }
        await intruder.shutdown()
        let wrongCluster = try ClusterClient(cluster: "other", secret: TestCluster.secret, node: try cluster.address(0))
        await expectCode(.nodeUnreachable) {
            try await wrongCluster.call(Recorder.Put(key: "a", value: "b"), kind: "recorder", key: "k", namespace: "test")
        }
        await wrongCluster.shutdown()
        let client = try ClusterClient(cluster: "test", secret: TestCluster.secret, node: try cluster.address(0))
        try await client.call(Recorder.Put(key: "a", value: "b"), kind: "recorder", key: "k", namespace: "test")
        #expect(try await cluster.nodes[0].ref(Recorder.self, key: "k").call(Recorder.Get(key: "a")) == "b")
        #expect(try await cluster.nodes[0].ref(Recorder.self, key: "k").call(Recorder.Get(key: "a")) == "b")
        await client.shutdown()
        await cluster.shutdown()
    }

    /// Clients are taken as the requests of the node they connect to: however many come and
    /// go, the nodes number no origin for them, the actor stores no order entry for them, and
    /// the nodes forget them once their connections are gone.
    @Test func clientsThatComeAndGoLeaveNoOriginBehind() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 2) else { return }
        let (owner, gateway) = (cluster.nodes[0], cluster.nodes[1])
        let actor = ActorID(namespace: "test", kind: Recorder.kind.name, key: "clients")
        try await owner.ref(Recorder.self, key: actor.key).call(Recorder.Put(key: "first", value: "v"))
        try await gateway.ref(Recorder.self, key: actor.key).call(Recorder.Put(key: "forwarded", value: "v"))
        let nodeOrigins = (owner.origins.count, gateway.origins.count)
        for index in 0..<40 {
            // Half call the owner, half the other node, which forwards.
            let client = try ClusterClient(cluster: "test", secret: TestCluster.secret, node: try cluster.address(index % 2))
            try await client.call(Recorder.Put(key: "k\(index)", value: "v"), kind: "recorder", key: actor.key, namespace: "test")
            try await client.call(Recorder.Put(key: "k\(index)", value: "w"), kind: "recorder", key: actor.key, namespace: "test")
            await client.shutdown()
        }
        #expect(owner.origins.count == nodeOrigins.0)
        #expect(gateway.origins.count == nodeOrigins.1)
        let order = try #require(cluster.stores[0].committedOrder(of: actor))
        var rows = [ModuleRow(module: ModuleRow.orderModule, key: [], value: order)]
        let entries = OrderState.take(from: &rows, origins: OriginTable(this: "reader"))
        #expect(entries.count <= 2, "one entry per node at most, none per client: \(entries.count)")
        #expect(try await eventually { owner.clientOrder.count == 0 && gateway.clientOrder.count == 0 })
        #expect(try await owner.ref(Recorder.self, key: actor.key).call(Recorder.Get(key: "k39")) == "w")
        await cluster.shutdown()
    }

    /// A client's request that comes in on an older connection after a later one came in on
    /// a newer connection is refused; a client is forgotten once its connections are gone.
    @Test func clientOrderRefusesAnOvertakenRequestAndForgetsGoneClients() {
        let order = ClientOrder()
        var first: (any AnyObject & Sendable)? = Locked(0)
        var second: (any AnyObject & Sendable)? = Locked(0)
        #expect(order.admit("client-a", sequence: 1, connection: first!, then: {}))
        #expect(order.admit("client-a", sequence: 3, connection: second!, then: {}))
        #expect(!order.admit("client-a", sequence: 2, connection: first!, then: {}))
        #expect(order.admit("client-b", sequence: 1, connection: second!, then: {}))
        #expect(order.admit("client-a", sequence: 0, connection: first!, then: {}), "not numbered: always taken")
        #expect(order.count == 2)
        second = nil
        #expect(order.count == 1, "client-b's only connection is gone; client-a still has one")
        first = nil
        #expect(order.count == 0)
        _ = (first, second)
    }

    @Test func nodesAndClientsTalkOverMutualTLSAndAPlainClientIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let files = try TestCertificates.write(to: directory.path)
        let tls = try TransportTLSConfiguration.mutual(certificateChain: files.certificate, privateKey: files.key, trustRoots: files.ca)
        guard let cluster = try await TestCluster.start(.sqlite, count: 2, tls: tls) else { return }
        _ = try await cluster.nodes[0].ref(Recorder.self, key: "secure").call(Recorder.Activations())
        let remote = try cluster.nodes[1].ref(Recorder.self, key: "secure")
        try await remote.call(Recorder.Put(key: "a", value: "over TLS"))
        #expect(try await remote.call(Recorder.Host()) == cluster.nodes[0].id.rawValue)
        let client = try ClusterClient(cluster: "test", secret: TestCluster.secret, node: try cluster.address(1), tls: tls)
        #expect(try await client.call(Recorder.Get(key: "a"), kind: "recorder", key: "secure", namespace: "test") == "over TLS")
        await client.shutdown()
        let plain = try ClusterClient(cluster: "test", secret: TestCluster.secret, node: try cluster.address(1))
        await expectCode(.nodeUnreachable) {
            try await plain.call(Recorder.Get(key: "a"), kind: "recorder", key: "secure", namespace: "test")
        }
        await plain.shutdown()
        #expect(try await remote.call(Recorder.Get(key: "a")) == "over TLS", "the cluster goes on serving")
        await cluster.shutdown()
        #expect(throws: TransportError.self) {
            try TransportTLSConfiguration.mutual(
                certificateChain: files.certificate, privateKey: directory.path + "/missing.pem", trustRoots: files.ca)
        }
        #expect(throws: TransportError.self) {
            try TransportTLSConfiguration.mutual(certificateChain: files.ca, privateKey: files.ca, trustRoots: files.ca)
        }
    }

    @Test func anOversizedRequestGetsAClearErrorAndNothingElseBreaks() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 2, maxFrameSize: 64 << 10) else { return }
        _ = try await cluster.nodes[0].ref(Recorder.self, key: "big").call(Recorder.Activations())
        let remote = try cluster.nodes[1].ref(Recorder.self, key: "big")
        await expectCode(.payloadTooLarge) { try await remote.call(Recorder.Put(key: "a", value: String(repeating: "x", count: 100_000))) }
        try await remote.call(Recorder.Put(key: "a", value: "small"))
        #expect(try await remote.call(Recorder.Get(key: "a")) == "small")
        await cluster.shutdown()
    }

    @Test func aNodeThatShutsDownHandsItsActorsOver() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        let viaB = try cluster.nodes[1].ref(Recorder.self, key: "moving")
        _ = try await cluster.nodes[0].ref(Recorder.self, key: "moving").call(Recorder.Activations())
        for index in 0..<100 { try await viaB.call(Recorder.Put(key: "k\(index)", value: "v\(index)")) }
        await cluster.nodes[0].shutdown()
        let viaC = try cluster.nodes[2].ref(Recorder.self, key: "moving")
        let (count, _) = try await retrying { try await viaC.call(Recorder.Count()) }
        #expect(count == 100)
        #expect(try await viaC.call(Recorder.Host()) != cluster.nodes[0].id.rawValue)
        #expect(try await viaC.call(Recorder.Activations()) == 2)
        // B's ref remembered the route to A; it must follow the actor to its new owner.
        let (countViaB, _) = try await retrying { try await viaB.call(Recorder.Count()) }
        #expect(countViaB == 100)
        #expect(try await viaB.call(Recorder.Host()) != cluster.nodes[0].id.rawValue)
        await cluster.shutdown()
    }

    @Test func aNodeThatCannotHeartbeatStopsServingAndItsActorsMove() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        let onA = try a.ref(Recorder.self, key: "leased")
        try await onA.call(Recorder.Put(key: "k", value: "old"))
        cluster.stores[0].failHeartbeats(true)
        // A's lease runs out (80% of the 2 s failure timeout): it must stop answering, even reads.
        let deadline = ContinuousClock.now + .seconds(10)
        var refused: DNAError?
        while refused == nil, ContinuousClock.now < deadline {
            do { _ = try await onA.call(Recorder.Peek(key: "k")) } catch let error as DNAError { refused = error }
            if refused == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(refused?.isRetryable == true, "a node without a lease refuses with a retryable error")
        // B takes the name over once A's heartbeat is older than the failure timeout.
        let viaB = try b.ref(Recorder.self, key: "leased")
        let (_, errors) = try await retrying { try await viaB.call(Recorder.Put(key: "k", value: "new")) }
        #expect(errors.allSatisfy { $0.isRetryable })
        #expect(try await viaB.call(Recorder.Host()) != a.id.rawValue)
        #expect(try await viaB.call(Recorder.Activations()) == 2)
        // While cut off, A still answers nothing for the name.
        await #expect(throws: DNAError.self) { try await onA.call(Recorder.Peek(key: "k")) }
        cluster.stores[0].failHeartbeats(false)
        // Back in touch, A forwards to the new owner and never shows the old value.
        let (value, _) = try await retrying { try await onA.call(Recorder.Get(key: "k")) }
        #expect(value == "new")
        await cluster.shutdown()
    }

    /// The store's wall clock jumps a minute forward while A, cut off from the store, still
    /// serves on its lease: by the store's clock A's heartbeat is long past the failure
    /// timeout, but B takes the name only once B itself watched A silent for a failure
    /// timeout — after A's lease ran out.
    @Test func aForwardJumpOfTheStoresClockLetsNoNodeTakeANameItsOwnerStillServes() async throws {
        let storeClock = TestClock()
        let store = InMemoryStore(clock: storeClock)
        guard let cluster = try await TestCluster.start(.sqlite, failureTimeout: .seconds(4), sharedStore: store) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        let key = "jumped"
        try await a.ref(Recorder.self, key: key).call(Recorder.Put(key: "k", value: "v"))
        func owner() async throws -> NodeID? {
            try await store.registrations(kind: Recorder.kind.name, limit: 100).first { $0.actor.key == key }?.owner
        }
        #expect(try await owner() == a.id)
        cluster.stores[0].failHeartbeats(true)
        try await b.refreshMembers()
        storeClock.advance(by: .seconds(60))
        try await b.refreshMembers()
        // B is asked for the name at once, while A's lease (80 % of 4 s) still holds.
        let call = Task { try await b.ref(Recorder.self, key: key).call(Recorder.Host()) }
        var checkedWhileAServes = 0
        while a.leaseSnapshot.deadline > a.clock.now {
            let current = try await owner()
            // The lease still held after the read, so it held at the read.
            if a.leaseSnapshot.deadline > a.clock.now {
                #expect(current == a.id, "B took the name while A still serves it")
                checkedWhileAServes += 1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(checkedWhileAServes > 0, "the test was too slow: A's lease ran out before the first check")
        // B takes it once it watched A silent for the failure timeout: the call waited.
        #expect(try await call.value == b.id.rawValue)
        #expect(a.leaseSnapshot.deadline <= a.clock.now, "A's lease had run out")
        #expect(try await b.ref(Recorder.self, key: key).call(Recorder.Get(key: "k")) == "v")
        await cluster.shutdown()
    }

    @Test func consistentHashPlacementSpreadsNamesOverTheNodes() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, placement: .consistentHash) else { return }
        var hosts: [String: Int] = [:]
        for index in 0..<30 {
            let host = try await cluster.nodes[0].ref(Recorder.self, key: "spread-\(index)").call(Recorder.Host())
            hosts[host, default: 0] += 1
            // Whoever asks, the name lives on the node its hash picked.
            #expect(try await cluster.nodes[2].ref(Recorder.self, key: "spread-\(index)").call(Recorder.Host()) == host)
        }
        #expect(hosts.count == 3, "30 names land on all 3 nodes: \(hosts)")
        #expect(cluster.nodes.map(\.activationCount).reduce(0, +) == 30)
        await cluster.shutdown()
    }
}

func expectCode<T>(_ code: DNAError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected DNAError.\(code)", sourceLocation: sourceLocation)
    } catch let error as DNAError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected DNAError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("PostgreSQL outage", .integration, .serialized, .timeLimit(.minutes(3)))
struct PostgresOutageTests {
    @Test func aClusterRidesOutAPostgreSQLRestartWithoutLosingAcknowledgedWrites() async throws {
        guard ProcessInfo.processInfo.environment["DNA_POSTGRES_URL"] == nil else {
            print("⚠️  SKIPPED: cannot stop an external PostgreSQL (DNA_POSTGRES_URL is set)")
            return
        }
        guard LocalPostgresServer.isAvailable else {
            print("⚠️  SKIPPED: no PostgreSQL binaries: the PostgreSQL outage test does not run")
            return
        }
        // A server of its own: the other suites keep using theirs while this one stops.
        let server = try await LocalPostgresServer.start(settings: ["fsync=off"])
        defer { server.terminate() }
        let url = try await server.createDatabase(named: "dna_outage")
        guard let cluster = try await TestCluster.start(.postgres, count: 2, failureTimeout: .seconds(2), postgresURL: url) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        _ = try await a.ref(Recorder.self, key: "outage").call(Recorder.Activations())
        let acknowledged = Locked<Set<String>>([])
        let failures = Locked<[String]>([])
        let slowest = Locked<Duration>(.zero)
        // The outage's bounds, and whether a call waited it out (sent early in it, answered after).
        let outage = Locked<(paused: ContinuousClock.Instant?, resumed: ContinuousClock.Instant?)>((nil, nil))
        let spanned = Locked(false)
        let stop = Locked(false)
        let inCall = Locked<[Int: String]>([:])
        let load = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<8 {
                    let node = lane.isMultiple(of: 2) ? a : b
                    let ref = try node.ref(Recorder.self, key: lane < 4 ? "outage" : "outage-\(lane)")
                    group.addTask {
                        var index = 0
                        while !stop.withLock({ $0 }) {
                            let key = "l\(lane)-\(index)"
                            index += 1
                            inCall.withLock { $0[lane] = key }
                            defer { inCall.withLock { $0[lane] = nil } }
                            let began = ContinuousClock.now
                            defer {
                                let ended = ContinuousClock.now
                                slowest.withLock { $0 = max($0, ended - began) }
                                let (paused, resumed) = outage.withLock { $0 }
                                // Sent in the outage's first second (or before) and answered after it.
                                if let paused, let resumed, began < max(paused, resumed - .seconds(2)), ended > resumed {
                                    spanned.withLock { $0 = true }
                                }
                            }
                            do {
                                try await ref.call(Recorder.Put(key: key, value: "v"))
                                acknowledged.withLock { _ = $0.insert("\(ref.id.key)/\(key)") }
                            } catch let error as DNAError {
                                failures.withLock { $0.append("\(error.code)") }
                                try await Task.sleep(for: .milliseconds(20))  // back off while the store is away
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        func acknowledgedCount() -> Int { acknowledged.withLock { $0.count } }
        try await waitUntil { acknowledgedCount() >= 200 }
        print("outage test: pausing PostgreSQL after \(acknowledgedCount()) acknowledged writes")
        outage.withLock { $0.paused = ContinuousClock.now }
        try await server.pause()
        try await Task.sleep(for: .seconds(3))  // the outage itself
        print("outage test: resuming PostgreSQL")
        try await server.resume()
        outage.withLock { $0.resumed = ContinuousClock.now }
        print("outage test: PostgreSQL is back")
        let atResume = acknowledgedCount()
        // The cluster recovers by itself: writes are acknowledged again.
        try await waitUntil(timeout: .seconds(60)) { acknowledgedCount() >= atResume + 200 }
        stop.withLock { $0 = true }
        print("outage test: recovered; stopping the load")
        // Every caller gets an answer (success or an error) within the store's operation
        // timeout plus the commit timeout: none is left waiting for ever.
        for _ in 0..<600 where !inCall.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(inCall.withLock { $0.isEmpty }, "callers still waiting a minute after the outage: \(inCall.withLock { $0 })")
        guard inCall.withLock({ $0.isEmpty }) else { return }
        try await load.value
        print("outage test: load stopped; reading back \(acknowledged.withLock { $0.count }) writes")
        // The outage reached the callers: some were refused, or waited it out (a commit
        // retried until the server was back answers them late but truthfully).
        let (refused, longest, waitedOut) = (failures.withLock { $0 }.count, slowest.withLock { $0 }, spanned.withLock { $0 })
        print("outage test: \(refused) calls refused; the longest call took \(longest); a call waited the outage out: \(waitedOut)")
        #expect(refused > 0 || waitedOut, "the outage was not seen by callers: the test proved nothing")
        // Every acknowledged write is there.
        let acked = acknowledged.withLock { $0 }
        var byActor: [String: [String]] = [:]
        for entry in acked {
            let parts = entry.split(separator: "/", maxSplits: 1)
            byActor[String(parts[0]), default: []].append(String(parts[1]))
        }
        for (actor, keys) in byActor {
            let ref = try b.ref(Recorder.self, key: actor)
            for key in keys {
                let value = try await retrying { try await ref.call(Recorder.Get(key: key)) }.value
                #expect(value == "v", "\(actor)/\(key) was acknowledged but is missing")
            }
        }
        await cluster.shutdown()
    }
}

/// Waits until `condition` holds, checking every 10 ms, or fails after `timeout`.
func waitUntil(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure(reason: "condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
