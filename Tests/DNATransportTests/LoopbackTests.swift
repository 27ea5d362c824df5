import Dispatch
import NIOCore
import NIOPosix
import Synchronization
import DNATestSupport
import Testing

@testable import DNATransport

@Suite("Transport on loopback", .integration, .serialized)
struct LoopbackTests {
    @Test("a peer that stops reading: sends past maxQueuedBytes are refused, nothing accepted is lost, then sends flow again")
    func backPressure() async throws {
        // The server's handler blocks its event loop on the first request until released:
        // the server stops reading, the socket buffers fill, the link stops being writable.
        let gate = DispatchSemaphore(value: 0)
        let blocked = Atomic<Bool>(false)
        let (server, serverLog, address) = try await Fixtures.transport(
            nodeID: "server",
            reply: { _, _ in
                if !blocked.exchange(true, ordering: .relaxed) { gate.wait() }
            })
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.maxQueuedBytes = 256 << 10 })
        let payload = Array(repeating: UInt8(7), count: 4096)
        func request(_ id: UInt64) -> WireRequest {
            WireRequest(id: id, expectsReply: false, hops: 0, namespace: "n", kind: "k", key: "key", requestName: "Put", payload: payload)
        }
        try client.send(request(1), to: address)
        try await serverLog.wait(for: "the first request") { $0.requests.count == 1 }
        var accepted: [UInt64] = [1]
        var refusal: TransportError?
        // Far more than the socket buffers and maxQueuedBytes hold together.
        for id in 2...UInt64(100_000) {
            do {
                try client.send(request(id), to: address)
                accepted.append(id)
            } catch {
                refusal = error
                break
            }
        }
        #expect(refusal?.code == .overloaded, "a peer that does not read must not make the sender queue without bound")
        gate.signal()
        let caughtUp = accepted.count
        try await serverLog.wait(for: "every accepted request") { $0.requests.count >= caughtUp }
        #expect(serverLog.log.requests.map(\.id) == accepted, "everything accepted arrives, in order")
        // Caught up: sends are accepted again.
        let next = accepted.last! + 1
        try client.send(request(next), to: address)
        try await serverLog.wait(for: "a send after catching up") { $0.requests.last?.id == next }
        #expect(clientLog.log.failures.isEmpty)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a peer that sends calls and never reads the answers: the node stops reading it, then catches up once it reads")
    func inboundBackPressure() async throws {
        let answer = [UInt8](repeating: 9, count: 16 << 10)
        let (server, serverLog, address) = try await Fixtures.transport(
            nodeID: "server",
            reply: { request, sink in
                sink.send(WireResponse(id: request.id, result: .success(answer)))
            })
        // 2,000 answers of 16 KiB: far more than the socket buffers hold.
        let total = 2_000
        let ids = try await RawConnection.session(port: address.port, timeout: .seconds(60)) { connection in
            try await connection.authenticate()
            var requests = ByteBuffer()
            for id in 1...UInt64(total) {
                FrameCodec.encode(.request(Fixtures.request(id, payload: [UInt8](repeating: 1, count: 1024))), into: &requests)
            }
            try await connection.write(requests)
            // Nothing read yet: without back-pressure the node would read every request and
            // hold all 32 MiB of answers in memory.
            let readEverything: Bool
            do {
                try await serverLog.wait(for: "every request read", timeout: .seconds(2)) { $0.requests.count == total }
                readEverything = true
            } catch {
                readEverything = false
            }
            #expect(!readEverything, "the node must stop reading a peer that does not read its answers")
            var ids: [UInt64] = []
            while ids.count < total, let frame = try await connection.nextFrame() {
                if case .response(let response) = frame { ids.append(response.id) }
            }
            return ids
        }
        #expect(ids == Array(1...UInt64(total)), "once the peer reads, every answer arrives, in order")
        await server.shutdown()
    }

    @Test("10,000 requests arrive in order and every response comes back with its id")
    func tenThousandInOrder() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server")
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        let count = 10_000
        // From two threads' worth of tasks would reorder by design; order is per caller, so
        // one caller sends all of them.
        for id in 1...UInt64(count) {
            try client.send(Fixtures.request(id, payload: Array(repeating: UInt8(truncatingIfNeeded: id), count: 16)), to: address)
        }
        let log = try await clientLog.wait(for: "\(count) responses") { $0.responses.count >= count }
        #expect(log.responses.map(\.id) == Array(1...UInt64(count)))
        #expect(log.responses.allSatisfy { $0.result == .success(Array(repeating: UInt8(truncatingIfNeeded: $0.id), count: 16)) })
        #expect(log.failures.isEmpty)
        let received = serverLog.log
        #expect(received.requests.map(\.id) == Array(1...UInt64(count)))
        var first = Fixtures.request(1, payload: Array(repeating: 1, count: 16))
        first.sequence = 1  // the link numbers requests in the order it queues them
        #expect(received.requests.first == first)
        #expect(received.requests.map(\.sequence) == Array(1...UInt64(count)))
        #expect(received.peerNodeIDs == ["client"])
        await client.shutdown()
        await server.shutdown()
    }

    @Test("requests from many threads all arrive and are all answered")
    func concurrentSenders() async throws {
        let (server, _, address) = try await Fixtures.transport(nodeID: "server")
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<8 {
                group.addTask {
                    for n in 0..<1000 { try client.send(Fixtures.request(UInt64(sender * 1000 + n + 1)), to: address) }
                }
            }
            try await group.waitForAll()
        }
        let log = try await clientLog.wait(for: "8000 responses") { $0.responses.count >= 8000 }
        #expect(log.responseIDs == Set(1...8000))
        await client.shutdown()
        await server.shutdown()
    }

    @Test("casts are delivered and not answered")
    func casts() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server")
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        try client.send(Fixtures.request(0, expectsReply: false), to: address)
        try client.send(Fixtures.request(5), to: address)
        try await clientLog.wait(for: "the call's response") { $0.responseIDs.contains(5) }
        #expect(serverLog.log.requests.map(\.id) == [0, 5])
        #expect(clientLog.log.responses.map(\.id) == [5])
        await client.shutdown()
        await server.shutdown()
    }

    @Test("both directions work at once: each node is server and client")
    func bothDirections() async throws {
        let (a, aLog, aAddress) = try await Fixtures.transport(nodeID: "a")
        let (b, bLog, bAddress) = try await Fixtures.transport(nodeID: "b")
        try a.send(Fixtures.request(1), to: bAddress)
        try b.send(Fixtures.request(2), to: aAddress)
        try await aLog.wait(for: "a's response") { $0.responseIDs.contains(1) }
        try await bLog.wait(for: "b's response") { $0.responseIDs.contains(2) }
        #expect(aLog.log.peerNodeIDs == ["b"])
        #expect(bLog.log.peerNodeIDs == ["a"])
        await a.shutdown()
        await b.shutdown()
    }

    @Test("a request over maxFrameSize is not sent; the caller gets a payloadTooLarge response")
    func requestTooLarge() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server")
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.maxFrameSize = 1024 })
        try client.send(Fixtures.request(1, payload: Array(repeating: 0, count: 2000)), to: address)
        try client.send(Fixtures.request(2), to: address)
        let log = try await clientLog.wait(for: "both responses") { $0.responseIDs.isSuperset(of: [1, 2]) }
        guard case .failure(let error) = log.responses.first(where: { $0.id == 1 })?.result else {
            Issue.record("no failure for the oversized request"); return
        }
        #expect(error.code == "payloadTooLarge")
        #expect(error.retryable == false)
        #expect(log.responses.first(where: { $0.id == 2 })?.result == .success([1, 2, 3]))
        #expect(log.failures.isEmpty)
        #expect(serverLog.log.requests.map(\.id) == [2])
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a response over maxFrameSize is replaced by a payloadTooLarge error")
    func responseTooLarge() async throws {
        let (server, _, address) = try await Fixtures.transport(
            nodeID: "server",
            reply: { request, sink in
                sink.send(WireResponse(id: request.id, result: .success(Array(repeating: 0, count: request.id == 1 ? 5000 : 10))))
            }, configure: { $0.maxFrameSize = 4096 })
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        try client.send(Fixtures.request(1), to: address)
        try client.send(Fixtures.request(2), to: address)
        let log = try await clientLog.wait(for: "both responses") { $0.responses.count >= 2 }
        #expect(log.responses.map(\.id) == [1, 2])
        guard case .failure(let error) = log.responses[0].result else { Issue.record("big response sent"); return }
        #expect(error.code == "payloadTooLarge")
        #expect(!error.retryable)
        #expect(log.responses[1].result == .success(Array(repeating: 0, count: 10)))
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a closed port gives linkFailed(unreachable) promptly with the casts it lost; a send while backing off throws (defect g)")
    func unreachablePeer() async throws {
        // Nothing listens there, and no other test is given that port meanwhile.
        let address = PeerAddress(host: "127.0.0.1", port: Fixtures.unusedLowPort())
        let (client, clientLog, _) = try await Fixtures.transport(
            nodeID: "client",
            configure: {
                $0.reconnectInitialDelay = .seconds(30)
            })
        let start = ContinuousClock.now
        var attempts: Set<UInt64> = []
        // The event loops are held while the four are sent: a refused connection on loopback
        // fails within microseconds, and the casts must be queued on the attempt, not sent
        // after it failed (those throw, as checked below).
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        let held = DispatchSemaphore(value: 0)
        for loop in loops { loop.execute { held.wait() } }
        let sent = Result { () throws(TransportError) in
            try client.send(Fixtures.request(1), to: address, queued: { attempts.insert($0) })
            for id in 2...4 {
                try client.send(Fixtures.request(UInt64(id), expectsReply: false), to: address, queued: { attempts.insert($0) })
            }
        }
        for _ in loops { held.signal() }
        try sent.get()
        let log = try await clientLog.wait(for: "linkFailed", timeout: .seconds(3)) { !$0.failures.isEmpty }
        #expect(ContinuousClock.now - start < .seconds(5), "a refused connection is reported at once, not after a timeout")
        #expect(log.failures[0].peer == address)
        #expect(log.failures[0].error.code == .unreachable)
        #expect(attempts == [log.failures[0].attempt], "every request was queued on the attempt that failed")
        #expect(log.failures[0].droppedCasts == 3, "the three casts queued on it are reported lost")
        // Backing off: the sender is told at once, and nothing is queued or reported later.
        let error = #expect(throws: TransportError.self) { try client.send(Fixtures.request(5, expectsReply: false), to: address) }
        #expect(error?.code == .unreachable)
        #expect(error?.message.contains("backing off") == true)
        try await Task.sleep(for: .milliseconds(50))
        #expect(clientLog.log.failures.count == 1)
        #expect(clientLog.log.responses.isEmpty)
        await client.shutdown()
        #expect(throws: TransportError.self) { try client.send(Fixtures.request(6), to: address) }
    }

    @Test("after the server restarts on the same port, a later send reconnects and succeeds")
    func serverRestart() async throws {
        let (server, _, address) = try await Fixtures.transport(nodeID: "server", port: Fixtures.unusedLowPort())
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        #expect(try await Fixtures.roundTrip(client, clientLog, to: address, id: 1).result == .success([1, 2, 3]))
        await server.shutdown()
        let log = try await clientLog.wait(for: "linkFailed after the server stopped") { !$0.failures.isEmpty }
        #expect(log.failures[0].error.code == .unreachable)

        let (restarted, restartedLog, _) = try await Fixtures.transport(nodeID: "server-2", port: address.port)
        // The caller's retry policy: try again until it works (back-off makes early tries fail fast).
        var id: UInt64 = 100
        var response: WireResponse?
        let deadline = ContinuousClock.now + .seconds(10)
        while response == nil, ContinuousClock.now < deadline {
            id += 1
            response = try? await Fixtures.roundTrip(client, clientLog, to: address, id: id)
            if response == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(response?.result == .success([1, 2, 3]))
        #expect(restartedLog.log.peerNodeIDs == ["client"])
        await client.shutdown()
        await restarted.shutdown()
    }

    @Test("after shutdown, sends fail with shutDown and the port is closed")
    func sendAfterShutdown() async throws {
        let (server, _, address) = try await Fixtures.transport(nodeID: "server", port: Fixtures.unusedLowPort())
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        _ = try await Fixtures.roundTrip(client, clientLog, to: address, id: 1)
        await client.shutdown()
        let error = #expect(throws: TransportError.self) { try client.send(Fixtures.request(2), to: address) }
        #expect(error?.code == .shutDown)
        await server.shutdown()
        await #expect(throws: (any Error).self) {
            _ = try await RawConnection.session(port: address.port) { _ in true }
        }
        await #expect(throws: TransportError.self) { _ = try await server.start() }
    }

    @Test("a secret shorter than 16 bytes is refused by init")
    func shortSecret() {
        #expect(throws: TransportError(.invalidConfiguration, "the cluster secret must be at least 16 bytes")) {
            _ = try ClusterTransport(
                configuration: Fixtures.configuration(nodeID: "n", secret: Array("too short".utf8)), delegate: Recorder())
        }
        #expect(throws: Never.self) {
            _ = try ClusterTransport(
                configuration: Fixtures.configuration(nodeID: "n", secret: Array(repeating: 1, count: 16)),
                delegate: Recorder())
        }
    }
}
