@testable import DNAPostgres
import DNAStore
import DNATesting
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import DNATestSupport
import Testing

/// A commit the store acknowledged must be in the database, even when the connection is
/// lost right after the server reported the statement done.
@Suite("PostgreSQL acknowledgements", .integration, .serialized, .enabled(if: TestPostgres.isAvailable))
struct PostgresAcknowledgementTests {
    /// postgres-nio completes a statement at its CommandComplete; an implicit transaction
    /// commits only later, at Sync. The proxy delivers the commit statement's
    /// CommandComplete and then cuts the connection before the server ever sees a Sync,
    /// so the server rolls back whatever that statement did not commit explicitly.
    let helpers = PostgresStoreTests()

    /// A fresh database, the proxy in front of it, and a store through the proxy holding
    /// `key`'s registration; the proxy is shut down afterwards.
    private func throughProxy(
        key: String, _ adjust: @escaping @Sendable (inout PostgresStore.Configuration) -> Void = { _ in },
        _ body: (_ proxy: SyncDroppingProxy, _ store: PostgresStore, _ registration: Registration, _ url: String) async throws -> Void
    ) async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        let direct = try PostgresStore.Configuration(url: url)
        let proxy = try await SyncDroppingProxy.start(
            upstreamHost: direct.host, upstreamPort: direct.port, marker: CommitStatement.sql)
        do {
            let store = try await helpers.openStore(url: url) {
                $0.port = proxy.port
                adjust(&$0)
            }
            try await store.join(node: helpers.node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
            let actor = ActorID(namespace: "t", kind: "kv", key: key)
            let (registration, _) = try granted(
                try await store.activate(ActivationRequest(actor: actor, node: helpers.node)))
            try await body(proxy, store, registration, url)
        } catch {
            try? await proxy.shutdown()
            throw error
        }
        try await proxy.shutdown()
    }

    @Test(.timeLimit(.minutes(2))) func commitAcknowledgedBeforeTheConnectionIsLostIsDurable() async throws {
        try await throughProxy(key: "ack") { proxy, store, registration, url in
            var acknowledged: [String: String] = [:]
            func batch(_ sequence: Int64) -> CommitBatch {
                CommitBatch(
                    registration: registration, sequence: sequence, operations: [helpers.put("key-\(sequence)", "value-\(sequence)")])
            }
            for sequence in Int64(1)...3 {
                try await store.commit(batch(sequence))
                acknowledged["key-\(sequence)"] = "value-\(sequence)"
            }

            proxy.arm()
            let outcome: Result<Void, StoreError>
            do throws(StoreError) {
                try await store.commit(batch(4))
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            print("acknowledgement test: the commit cut off before Sync returned \(outcome)")
            #expect(proxy.firedCount == 1, "the proxy never cut a commit off: the test proved nothing")
            switch outcome {
            case .success:
                acknowledged["key-4"] = "value-4"
            case .failure(let error):
                // Usually only after `operationTimeout`: postgres-nio drops (never fails)
                // the COMMIT that is written to the connection once it is closed.
                #expect(error.isRetryable, "\(error)")
                // Not acknowledged, so the batch may be sent again, as a caller would while
                // the answer is retryable: through the proxy, which forwards normally once it
                // has fired, on whatever connection the pool has (one may be a dead one).
                var attempts: [String] = []
                while attempts.count < 5 {
                    do throws(StoreError) {
                        try await store.commit(batch(4))
                        acknowledged["key-4"] = "value-4"
                        break
                    } catch {
                        attempts.append("\(error)")
                        print("acknowledgement test: resending batch 4 failed: \(error)")
                        guard error.isRetryable else { break }
                    }
                }
                #expect(acknowledged["key-4"] != nil, "batch 4 was never acknowledged: \(attempts)")
            }
            await store.close()

            // Read back from the server itself, past the proxy.
            let reader = try await helpers.openStore(url: url)
            let (_, rows) = try granted(
                try await reader.activate(ActivationRequest(actor: registration.actor, node: helpers.node)))
            await reader.close()
            let found = Dictionary(
                rows.map { (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }
            ) { first, _ in first }
            for (key, value) in acknowledged.sorted(by: { $0.key < $1.key }) {
                #expect(found[key] == value, "acknowledged \(key) was lost")
            }
        }
    }
}

extension PostgresAcknowledgementTests {
    /// Defect e: an owner paused in the middle of a commit (after its statement, before its
    /// COMMIT) holds its actor's row lock. The server ends its session after
    /// `transactionIdleTimeout`, so a claimant takes the name within the owner's failure
    /// timeout plus that, and the paused batch is rolled back, not committed.
    @Test(.timeLimit(.minutes(2))) func anOwnerPausedMidCommitDelaysTakeoverByABoundedTime() async throws {
        try await throughProxy(key: "paused", { $0.operationTimeout = .seconds(60) }) { proxy, owner, registration, url in
            try await owner.heartbeat(node: helpers.node, state: .up, activations: 1)
            let lastHeartbeat = ContinuousClock.now
            proxy.armFreeze()
            let stuck = Task {
                try await owner.commit(CommitBatch(registration: registration, sequence: 1, operations: [helpers.put("paused", "x")]))
            }
            // The claimant: another node, straight to the server; the owner's failure timeout is 5 s.
            let claimant = try await helpers.openStore(url: url)
            let other = NodeID(rawValue: "claimant")
            try await claimant.join(node: other, cluster: "c", address: "b", failureTimeout: .seconds(5), labels: [])
            var granted: (Registration, [ModuleRow])?
            var attempts: [String] = []
            while granted == nil, ContinuousClock.now - lastHeartbeat < .seconds(20) {
                do {
                    switch try await claimant.activate(ActivationRequest(actor: registration.actor, node: other)) {
                    case .granted(let taken, let rows): granted = (taken, rows)
                    case .ownedElsewhere: attempts.append("owned")
                    }
                } catch {
                    attempts.append("\((error as? StoreError)?.code.name ?? "\(error)")")
                }
                if granted == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let elapsed = ContinuousClock.now - lastHeartbeat
            print("paused-owner test: taken over \(elapsed) after the owner's last heartbeat; attempts \(Set(attempts))")
            #expect(proxy.firedCount == 1, "the owner's commit was not frozen: the test proved nothing")
            let (taken, rows) = try #require(granted, "the name was not taken over within 20 s")
            #expect(elapsed < .seconds(5 + 2 + 2), "failure timeout 5 s + transactionIdleTimeout 2 s, with 2 s to spare")
            #expect(taken.epoch == registration.epoch + 1)
            #expect(rows.isEmpty, "the paused batch was rolled back")
            stuck.cancel()
            await claimant.close()
        }
    }

    /// Defect f: a batch's timeout (what is left of the caller's commitTimeout) bounds an
    /// attempt, whatever the store's operationTimeout; a lost answer is outcomeUnknown.
    @Test(.timeLimit(.minutes(2))) func aBatchTimeoutBoundsTheAttempt() async throws {
        try await throughProxy(key: "deadline", { $0.operationTimeout = .seconds(60) }) { proxy, store, registration, _ in
            proxy.armFreeze()
            let started = ContinuousClock.now
            let error = await #expect(throws: StoreError.self) {
                try await store.commit(
                    CommitBatch(registration: registration, sequence: 1, operations: [helpers.put("k", "v")], timeout: .seconds(1)))
            }
            let waited = ContinuousClock.now - started
            #expect(proxy.firedCount == 1)
            #expect(waited < .seconds(4), "waited \(waited) with a timeout of 1 s")
            #expect(error?.code == .outcomeUnknown, "the statement reached the server: its fate is unknown")
        }
    }

    /// Defect e: claims blocked on a name's row lock give their connections up after
    /// `lockTimeout`, so they cannot take every connection from the node's heartbeats.
    @Test(.timeLimit(.minutes(2))) func blockedClaimsDoNotStarveHeartbeats() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        let store = try await helpers.openStore(url: url) {
            $0.pool.maximumConnections = 2
            $0.lockTimeout = .milliseconds(500)
        }
        let node = NodeID(rawValue: "node")
        try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let actor = ActorID(namespace: "t", kind: "kv", key: "locked")
        _ = try granted(try await store.activate(ActivationRequest(actor: actor, node: node)))
        // Another session holds the name's row lock for 8 s.
        let holder = Task {
            try await LocalPostgresServer.execute(
                "BEGIN; SELECT 1 FROM dna_actors WHERE name = 'locked' FOR UPDATE; SELECT pg_sleep(8); COMMIT;", on: url)
        }
        try await Task.sleep(for: .milliseconds(500))  // psql connects and takes the lock
        let claims = (0..<4).map { _ in
            Task { () -> StoreError? in
                do {
                    _ = try await store.activate(ActivationRequest(actor: actor, node: node))
                    return nil
                } catch {
                    return error as? StoreError
                }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        try await store.heartbeat(node: node, state: .up, activations: 1)
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(3), "the heartbeat waited \(waited) for a connection")
        for claim in claims {
            let error = await claim.value
            #expect(error?.code == .unavailable, "a blocked claim fails retryably: \(String(describing: error))")
        }
        _ = await holder.result
        await store.close()
    }

    /// postgres-nio never completes a query written to a connection that closed meanwhile
    /// (the store gives up on it after `operationTimeout`); the connection must still not
    /// be lost to the pool. With one connection in the pool, one loss would stop the store.
    @Test(.timeLimit(.minutes(2))) func connectionsCutMidCommitAreNotLostToThePool() async throws {
        let adjust: @Sendable (inout PostgresStore.Configuration) -> Void = {
            $0.pool.maximumConnections = 1
            $0.operationTimeout = .seconds(5)
        }
        try await throughProxy(key: "pool", adjust) { proxy, store, registration, _ in
            var sequence: Int64 = 1
            for round in 0...3 {
                if round > 0 { proxy.arm() }
                // Retried while the outcome is unknown; a batch cut off may have been applied
                // after all (then the next one is told its predecessor is missing).
                let deadline = ContinuousClock.now + .seconds(20)
                var committed = false
                while !committed {
                    let batch = CommitBatch(
                        registration: registration, sequence: sequence, operations: [helpers.put("k\(sequence)", "v")])
                    var result: Result<Void, StoreError> = .success(())
                    do throws(StoreError) { try await store.commit(batch) } catch { result = .failure(error) }
                    switch result {
                    case .success:
                        committed = true
                        sequence += 1
                    case .failure(let error):
                        // Cut after the statement was sent: the outcome is unknown; the same
                        // batch is tried again (a batch already applied is answered with success).
                        #expect(error.code == .unavailable || error.code == .outcomeUnknown, "\(error)")
                        try #require(ContinuousClock.now < deadline, "the store did not come back after cut \(round): \(error)")
                    }
                }
                #expect(proxy.firedCount == round, "the proxy did not cut commit \(round) off")
            }
            await store.close()
        }
    }
}

extension PostgresAcknowledgementTests {
    /// A store with one connection, `key`'s registration held, and a reader of how far its
    /// commits went (`batch_seq`, past every queued request: the pool serves in order).
    private func oneConnectionStore(key: String) async throws -> (PostgresStore, Registration, @Sendable () async throws -> Int64) {
        let store = try await helpers.openStore { $0.pool.maximumConnections = 1 }
        try await store.join(node: helpers.node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let (registration, _) = try granted(
            try await store.activate(ActivationRequest(actor: ActorID(namespace: "t", kind: "kv", key: key), node: helpers.node)))
        let applied: @Sendable () async throws -> Int64 = {
            try await store.withConnection("reading the fence") { connection in
                var sequence: Int64 = -1
                for try await value in try await connection.query(
                    "SELECT batch_seq FROM dna_actors WHERE actor_id = \(registration.rowID)", logger: Logger(label: "test")
                ).decode(Int64.self) {
                    sequence = value
                }
                return sequence
            }
        }
        return (store, registration, applied)
    }

    /// Defect 3: a commit answered `unavailable` (certainly not applied) never applies. The
    /// pool's one connection is busy past the batch's deadline and free right after it.
    @Test(.timeLimit(.minutes(2))) func aCommitAbandonedAtItsDeadlineIsNotAppliedByALateConnection() async throws {
        let (store, registration, applied) = try await oneConnectionStore(key: "late")
        let holding = OnceSignal()
        let release = OnceSignal()
        let holder = Task {
            try await store.withConnection("holding the only connection") { _ in
                holding.signal()
                await release.wait()
            }
        }
        await holding.wait()
        let batch = CommitBatch(registration: registration, sequence: 1, operations: [helpers.put("k", "v")], timeout: .milliseconds(300))
        let error = await #expect(throws: StoreError.self) { try await store.commit(batch) }
        #expect(error?.code == .unavailable, "no connection was had: nothing was sent")
        release.signal()
        try await holder.value
        #expect(try await applied() == 0, "answered unavailable, yet applied")
        try await store.commit(batch)  // the caller's retry
        #expect(try await applied() == 1)
        await store.close()
    }

    /// Defect 3: the pool grants the connection exactly as the deadline fires (the hook holds
    /// the granted connection until the caller has its answer): the attempt sends nothing.
    @Test(.timeLimit(.minutes(2))) func aConnectionGrantedAsTheDeadlineFiresSendsNothing() async throws {
        let (store, registration, applied) = try await oneConnectionStore(key: "grant")
        let granted = OnceSignal()
        let answered = OnceSignal()
        store.connectionGrantedHook.withLock {
            $0 = {
                granted.signal()
                await answered.wait()
            }
        }
        let batch = CommitBatch(registration: registration, sequence: 1, operations: [helpers.put("k", "v")], timeout: .milliseconds(300))
        let error = await #expect(throws: StoreError.self) { try await store.commit(batch) }
        store.connectionGrantedHook.withLock { $0 = nil }
        await granted.wait()
        #expect(error?.code == .unavailable, "the attempt had not started: nothing was sent")
        answered.signal()
        #expect(try await applied() == 0, "answered unavailable, yet applied")
        try await store.commit(batch)
        #expect(try await applied() == 1)
        await store.close()
    }
}

// MARK: - The proxy

/// A TCP proxy in front of a PostgreSQL server that, once armed, cuts off the next
/// execution of one statement (whose SQL starts with `marker`) between its CommandComplete and
/// the Sync that would end its implicit transaction. Every other connection, before and
/// after, is forwarded unchanged.
final class SyncDroppingProxy: Sendable {
    /// The local port clients connect to (on 127.0.0.1).
    let port: Int
    private let trigger: Trigger
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel

    private init(port: Int, trigger: Trigger, group: MultiThreadedEventLoopGroup, listener: any Channel) {
        self.port = port
        self.trigger = trigger
        self.group = group
        self.listener = listener
    }

    static func start(upstreamHost: String, upstreamPort: Int, marker: String) async throws -> SyncDroppingProxy {
        let trigger = Trigger(marker: marker)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let listener = try await ServerBootstrap(group: group)
                .childChannelInitializer { client in
                    // The server side on the client's event loop: both handlers of a link,
                    // and the link itself, then run on one thread.
                    ClientBootstrap(group: client.eventLoop).connect(host: upstreamHost, port: upstreamPort)
                        .flatMapThrowing { server in
                            let link = ProxyLink(trigger: trigger, client: client, server: server)
                            try server.pipeline.syncOperations.addHandler(ProxySideHandler(link: link, side: .backend))
                            try client.pipeline.syncOperations.addHandler(ProxySideHandler(link: link, side: .frontend))
                        }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            guard let port = listener.localAddress?.port else { throw ProxyError.noPort }
            return SyncDroppingProxy(port: port, trigger: trigger, group: group, listener: listener)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Cut off the next execution of the marked statement.
    func arm() { trigger.arm() }

    /// Freeze the client of the next execution of the marked statement instead, as if its
    /// process were paused right after it: the statement runs to its end (Sync included)
    /// and its answer reaches the client, nothing the client sends afterwards (its COMMIT)
    /// reaches the server, and the server's connection stays open (the session idles in
    /// its transaction, holding its locks) even if the client gives up.
    func armFreeze() { trigger.arm(freeze: true) }

    /// How many executions were cut off after their CommandComplete reached the client.
    var firedCount: Int { trigger.firedCount }

    func shutdown() async throws {
        try? await listener.close()
        try await group.shutdownGracefully()
    }

    enum ProxyError: Error {
        case noPort
        case malformedMessage
    }

    /// What the links of one proxy share: whether it is armed, and how often it fired.
    final class Trigger: Sendable {
        let marker: String
        private let state = Mutex<(armed: Bool, freeze: Bool, fired: Int)>((false, false, 0))

        init(marker: String) { self.marker = marker }

        func arm(freeze: Bool = false) {
            state.withLock {
                $0.armed = true
                $0.freeze = freeze
            }
        }
        /// Disarms; says whether it was armed (only one link may take it), and to freeze.
        func take() -> (taken: Bool, freeze: Bool) {
            state.withLock { state in
                defer { state.armed = false }
                return (state.armed, state.freeze)
            }
        }
        func recordFired() { state.withLock { $0.fired += 1 } }
        var firedCount: Int { state.withLock { $0.fired } }
    }
}

/// One client connection and its server connection. Both run on one event loop, and so
/// does everything here: no locks.
final class ProxyLink {
    enum Side { case frontend, backend }

    private let trigger: SyncDroppingProxy.Trigger
    private let client: any Channel
    private let server: any Channel
    private var fromClient = ByteBuffer()
    private var fromServer = ByteBuffer()
    /// The client has not sent its StartupMessage yet: its messages have no type byte.
    private var clientStarting = true
    /// The server owes a one-byte answer to an SSLRequest or GSSENCRequest.
    private var serverOwesEncryptionAnswer = false
    /// The session went encrypted: bytes are copied without being parsed.
    private var opaque = false
    /// Names of the prepared statements whose SQL is the marked statement.
    private var markedStatements: Set<String> = []
    /// The armed Bind of the marked statement was seen: the Sync after it is replaced.
    private var replaceNextSync = false
    /// Sync was replaced: nothing more from the client reaches the server.
    private var clientCutOff = false
    /// Sync was replaced: the statement's CommandComplete is the last message forwarded.
    private var awaitingCommandComplete = false
    /// Both connections are closed or closing.
    private var severed = false
    /// The client is frozen: its messages and its closing never reach the server.
    private var frozen = false
    /// Freezing: once the marked statement's ReadyForQuery reaches the client.
    private var freezeAfterNextReady = false

    private static let sslRequest: Int32 = 80_877_103
    private static let gssEncryptionRequest: Int32 = 80_877_104

    init(trigger: SyncDroppingProxy.Trigger, client: any Channel, server: any Channel) {
        self.trigger = trigger
        self.client = client
        self.server = server
    }

    func received(_ bytes: inout ByteBuffer, from side: ProxyLink.Side) {
        guard !severed else { return }
        if opaque {
            (side == .frontend ? server : client).writeAndFlush(bytes, promise: nil)
            return
        }
        do {
            switch side {
            case .frontend:
                guard !clientCutOff else { return }
                fromClient.writeBuffer(&bytes)
                try forwardClientMessages()
            case .backend:
                fromServer.writeBuffer(&bytes)
                try forwardServerMessages()
            }
        } catch {
            sever()
        }
    }

    /// The client side closed or failed: both connections close, unless the client is
    /// frozen (then the server's stays open, as a paused client's would).
    func clientGone() {
        if frozen { return }
        sever()
    }

    /// Closes both connections (once).
    func sever() {
        guard !severed else { return }
        severed = true
        client.close(promise: nil)
        server.close(promise: nil)
    }

    private func forwardClientMessages() throws {
        var out = server.allocator.buffer(capacity: fromClient.readableBytes)
        defer { if out.readableBytes > 0 { server.writeAndFlush(out, promise: nil) } }
        while !clientCutOff, let message = try Self.nextMessage(in: &fromClient, typed: !clientStarting) {
            if clientStarting {
                let code = message.getInteger(at: message.readerIndex + 4, as: Int32.self)
                if code == Self.sslRequest || code == Self.gssEncryptionRequest {
                    serverOwesEncryptionAnswer = true
                } else {
                    clientStarting = false  // the StartupMessage (or a CancelRequest)
                }
                out.writeImmutableBuffer(message)
                continue
            }
            var body = message.getSlice(at: message.readerIndex + 5, length: message.readableBytes - 5)!
            switch message.getInteger(at: message.readerIndex, as: UInt8.self)! {
            case UInt8(ascii: "P"):  // Parse: statement name, SQL, …
                guard let name = body.readNullTerminatedString(), let sql = body.readNullTerminatedString() else {
                    throw SyncDroppingProxy.ProxyError.malformedMessage
                }
                if sql.hasPrefix(trigger.marker) { markedStatements.insert(name) } else { markedStatements.remove(name) }
            case UInt8(ascii: "B"):  // Bind: portal, statement name, …
                guard body.readNullTerminatedString() != nil, let name = body.readNullTerminatedString() else {
                    throw SyncDroppingProxy.ProxyError.malformedMessage
                }
                if markedStatements.contains(name) {
                    let (taken, freeze) = trigger.take()
                    if taken {
                        if freeze { freezeAfterNextReady = true } else { replaceNextSync = true }
                    }
                }
            case UInt8(ascii: "S") where replaceNextSync:
                // Flush instead: the server sends the statement's results, CommandComplete
                // included, but never gets to end its transaction.
                out.writeInteger(UInt8(ascii: "H"))
                out.writeInteger(Int32(4))
                replaceNextSync = false
                clientCutOff = true
                awaitingCommandComplete = true
                return
            default:
                break
            }
            out.writeImmutableBuffer(message)
        }
    }

    private func forwardServerMessages() throws {
        var out = client.allocator.buffer(capacity: fromServer.readableBytes)
        defer { if out.readableBytes > 0 { client.writeAndFlush(out, promise: nil) } }
        while true {
            if serverOwesEncryptionAnswer {
                guard let answer = fromServer.readSlice(length: 1) else { return }
                serverOwesEncryptionAnswer = false
                out.writeImmutableBuffer(answer)
                if answer.getInteger(at: answer.readerIndex, as: UInt8.self) != UInt8(ascii: "N") {
                    // Encrypted from here on (not used by these tests): pass bytes through.
                    opaque = true
                    out.writeBuffer(&fromServer)
                    if fromClient.readableBytes > 0 { server.writeAndFlush(fromClient, promise: nil) }
                    fromClient.clear()
                    return
                }
                continue
            }
            guard let message = try Self.nextMessage(in: &fromServer, typed: true) else { return }
            let type = message.getInteger(at: message.readerIndex, as: UInt8.self)!
            out.writeImmutableBuffer(message)
            if freezeAfterNextReady && type == UInt8(ascii: "Z") {
                trigger.recordFired()
                freezeAfterNextReady = false
                frozen = true
                clientCutOff = true
                continue
            }
            if awaitingCommandComplete && (type == UInt8(ascii: "C") || type == UInt8(ascii: "E")) {
                if type == UInt8(ascii: "C") { trigger.recordFired() }
                // The client has its acknowledgement (or error); now the connection is lost
                // before any Sync. Severed first, so the server's closing does not close
                // the client before the message is written.
                severed = true
                server.close(promise: nil)
                let client = client
                client.writeAndFlush(out).whenComplete { _ in client.close(promise: nil) }
                out.clear()
                return
            }
        }
    }

    /// The next whole message in `buffer`, header included, or nil until more arrives.
    /// Typed messages have a type byte before the length; startup messages do not. The
    /// length counts itself.
    private static func nextMessage(in buffer: inout ByteBuffer, typed: Bool) throws -> ByteBuffer? {
        let header = typed ? 1 : 0
        guard let length = buffer.getInteger(at: buffer.readerIndex + header, as: Int32.self) else { return nil }
        guard length >= 4 else { throw SyncDroppingProxy.ProxyError.malformedMessage }
        return buffer.readSlice(length: header + Int(length))
    }
}

/// Hands one side's bytes to its link.
final class ProxySideHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let link: ProxyLink
    private let side: ProxyLink.Side

    init(link: ProxyLink, side: ProxyLink.Side) {
        self.link = link
        self.side = side
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        link.received(&bytes, from: side)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if side == .frontend { link.clientGone() } else { link.sever() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if side == .frontend { link.clientGone() } else { link.sever() }
    }
}
