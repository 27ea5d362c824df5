import NIOCore
import NIOPosix
import DNATestSupport
import Testing

@testable import DNATransport

/// Peers that are not well-behaved members of the cluster: the server closes their
/// connection, accepts none of their requests, and keeps serving everyone else.
@Suite("Hostile and misconfigured peers", .integration, .serialized)
struct HostilePeerTests {
    enum Hostile: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case httpGarbage, unknownFrameType, oversizedLengthPrefix, handshakeSizedFrameTooLarge, badMagic
        case wrongProtocolVersion, wrongCluster, forgedProof, requestBeforeHandshake, requestBeforeProof
        case malformedHello, silentUntilTimeout, partialHelloUntilTimeout

        var testDescription: String { rawValue }

        /// Plays the peer; returns the frames the server sent before closing.
        func play(_ connection: inout RawConnection) async throws -> [Frame] {
            switch self {
            case .httpGarbage:
                try await connection.write(Array("GET / HTTP/1.1\r\nHost: dna\r\n\r\n".utf8))
            case .unknownFrameType:
                try await connection.write([0, 0, 0, 3, 0x99, 1, 2])
            case .oversizedLengthPrefix:
                try await connection.write([0xff, 0xff, 0xff, 0xff])
            case .handshakeSizedFrameTooLarge:
                // Under maxFrameSize (16 MiB) but over the handshake limit: refused before authentication.
                try await connection.write([0, 0x10, 0, 0, FrameType.hello.rawValue])
            case .badMagic:
                try await connection.write(hello(magic: Array("DNA\u{2}".utf8)))
            case .wrongProtocolVersion:
                try await connection.write(hello(version: Hello.currentProtocolVersion + 1))
            case .wrongCluster:
                try await connection.write(hello(cluster: "another-cluster"))
            case .forgedProof:
                let nonce = HandshakeNonce.random()
                try await connection.write(hello(nonce: nonce))
                guard case .challenge(let challenge) = try await connection.nextFrame() else {
                    throw TimedOut(what: "a challenge")
                }
                let forged = HandshakeProofs(secret: Array("a guess at the cluster secret".utf8)).proof(
                    .client, clientNonce: nonce, serverNonce: challenge.nonce, cluster: "test",
                    serverID: challenge.nodeID, clientID: "raw")
                try await connection.write(.proof(Proof(clientProof: forged)))
            case .requestBeforeHandshake:
                try await connection.write(.request(Fixtures.request(666)))
            case .requestBeforeProof:
                try await connection.write(hello())
                try await connection.write(.request(Fixtures.request(666)))
            case .malformedHello:
                try await connection.write([0, 0, 0, 11, FrameType.hello.rawValue, 68, 78, 65, 1, 0, 1, 0, 0, 0, 200])
            case .silentUntilTimeout:
                break
            case .partialHelloUntilTimeout:
                try await connection.write(Array(encoded(hello()).readableBytesView.prefix(20)))
            }
            return try await connection.framesUntilClosed()
        }

        var waitsForTimeout: Bool { self == .silentUntilTimeout || self == .partialHelloUntilTimeout }

        /// What the server must have sent before closing (besides a Challenge).
        var expectedRefusal: String? {
            switch self {
            case .wrongProtocolVersion: "unsupported protocol version \(Hello.currentProtocolVersion + 1)"
            case .wrongCluster: "wrong cluster"
            case .forgedProof: "authentication failed"
            default: nil
            }
        }
    }

    @Test("connections that do not authenticate are capped: one over maxUnauthenticatedConnections is closed at once (defect j)")
    func unauthenticatedConnectionsAreCapped() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(
            nodeID: "server",
            configure: {
                $0.maxUnauthenticatedConnections = 3
                $0.handshakeTimeout = .seconds(60)
            })
        var idle: [any Channel] = []
        for _ in 0..<4 {
            idle.append(
                try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: address.port).get()
            )
        }
        // Exactly one is closed, long before the handshake timeout; three keep waiting.
        let deadline = ContinuousClock.now + .seconds(10)
        while idle.filter({ !$0.isActive }).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(idle.filter { !$0.isActive }.count == 1)
        for channel in idle { try? await channel.close() }
        // Once they are gone, a well-behaved peer is served.
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        var response: WireResponse?
        for id in UInt64(1)...50 where response == nil {
            response = try? await Fixtures.roundTrip(client, clientLog, to: address, id: id)
            if response == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(response?.result == .success([1, 2, 3]))
        #expect(serverLog.log.peerNodeIDs == ["client"])
        await client.shutdown()
        await server.shutdown()
    }

    @Test("the server closes the connection and keeps serving others", arguments: Hostile.allCases)
    func hostilePeer(_ hostile: Hostile) async throws {
        // Tests run in parallel on a loaded machine: only the timeout cases get a short
        // handshake timeout (long enough for the well-behaved clients to finish theirs).
        let handshakeTimeout: Duration = hostile.waitsForTimeout ? .seconds(3) : .seconds(10)
        let (server, serverLog, address) = try await Fixtures.transport(
            nodeID: "server",
            configure: {
                $0.handshakeTimeout = handshakeTimeout
            })
        let (before, beforeLog, _) = try await Fixtures.transport(nodeID: "before")
        #expect(try await Fixtures.roundTrip(before, beforeLog, to: address, id: 1).result == .success([1, 2, 3]))

        let start = ContinuousClock.now
        let frames = try await RawConnection.session(port: address.port, timeout: .seconds(15)) { connection in
            try await hostile.play(&connection)
        }
        let refusals = frames.compactMap { frame -> String? in
            if case .refuse(let refuse) = frame { refuse.reason } else { nil }
        }
        if let expected = hostile.expectedRefusal {
            #expect(refusals.count == 1)
            #expect(refusals.first?.contains(expected) == true, "\(refusals)")
        } else {
            #expect(refusals.isEmpty)
        }
        #expect(!frames.contains(.welcome))
        if hostile.waitsForTimeout {
            #expect(ContinuousClock.now - start >= .milliseconds(2_900), "closed before the handshake timeout")
        }

        // The client connected before is still served on its connection, and a new one too.
        #expect(try await Fixtures.roundTrip(before, beforeLog, to: address, id: 2).result == .success([1, 2, 3]))
        let (after, afterLog, _) = try await Fixtures.transport(nodeID: "after")
        #expect(try await Fixtures.roundTrip(after, afterLog, to: address, id: 3).result == .success([1, 2, 3]))
        // No request from the hostile connection reached the delegate.
        #expect(serverLog.log.requests.map(\.id) == [1, 2, 3])
        #expect(beforeLog.log.failures.isEmpty)
        await before.shutdown()
        await after.shutdown()
        await server.shutdown()
    }

    @Test("a node of another cluster gets linkFailed(handshakeFailed) naming the refusal")
    func wrongClusterTransport() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server")
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", cluster: "other")
        try client.send(Fixtures.request(1), to: address)
        let log = try await clientLog.wait(for: "linkFailed") { !$0.failures.isEmpty }
        #expect(log.failures[0].error.code == .handshakeFailed)
        #expect(log.failures[0].error.message.contains("wrong cluster \"other\""))
        #expect(log.responses.isEmpty)
        #expect(serverLog.log.requests.isEmpty)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a node with another secret is not authenticated, whichever side it is on")
    func wrongSecretTransport() async throws {
        let otherSecret = Array("another secret, 32 bytes long!!!".utf8)
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server")
        let (impostor, impostorLog, impostorAddress) = try await Fixtures.transport(nodeID: "impostor", secret: otherSecret)
        // The impostor as client: it finds the server's proof wrong (from its side, the server is the fake).
        try impostor.send(Fixtures.request(1), to: address)
        let log = try await impostorLog.wait(for: "linkFailed") { !$0.failures.isEmpty }
        #expect(log.failures[0].error.code == .handshakeFailed)
        #expect(log.failures[0].error.message.contains("does not know the cluster secret"))
        #expect(serverLog.log.requests.isEmpty)
        // The impostor as server (a fake server): the honest client detects it and sends nothing.
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client")
        try client.send(Fixtures.request(2), to: impostorAddress)
        let clientFailures = try await clientLog.wait(for: "linkFailed") { !$0.failures.isEmpty }
        #expect(clientFailures.failures[0].error.code == .handshakeFailed)
        #expect(clientFailures.failures[0].error.message.contains("does not know the cluster secret"))
        #expect(impostorLog.log.requests.isEmpty)
        await client.shutdown()
        await impostor.shutdown()
        await server.shutdown()
    }

    @Test("a server that never answers the Hello fails the link after handshakeTimeout")
    func clientHandshakeTimeout() async throws {
        let listener = try await SilentListener.start()
        let (client, clientLog, _) = try await Fixtures.transport(
            nodeID: "client",
            configure: {
                $0.handshakeTimeout = .milliseconds(200)
            })
        let start = ContinuousClock.now
        try client.send(Fixtures.request(1), to: PeerAddress(host: "127.0.0.1", port: listener.port))
        let log = try await clientLog.wait(for: "linkFailed", timeout: .seconds(5)) { !$0.failures.isEmpty }
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(log.failures[0].error.code == .handshakeFailed)
        #expect(log.failures[0].error.message.contains("timed out"))
        await client.shutdown()
        try await listener.close()
    }
}

/// A TCP listener that accepts connections and never says anything.
struct SilentListener {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    static func start() async throws -> SilentListener {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return SilentListener(channel: channel)
    }

    func close() async throws {
        try await channel.close()
    }
}
