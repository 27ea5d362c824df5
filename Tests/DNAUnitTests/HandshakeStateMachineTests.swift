import NIOCore
import Testing

@testable import DNATransport

@Suite("Handshake state machines")
struct HandshakeStateMachineTests {
    static let secret = Array("correct horse battery staple".utf8)
    static let proofs = HandshakeProofs(secret: secret)
    static let clientNonce = [UInt8](repeating: 0xC1, count: 32)
    static let serverNonce = [UInt8](repeating: 0x5E, count: 32)

    static func server(
        cluster: String = "prod", proofs: HandshakeProofs = proofs, nonce: [UInt8] = serverNonce
    )
        -> ServerHandshakeStateMachine
    {
        ServerHandshakeStateMachine(cluster: cluster, nodeID: "server-1", proofs: proofs, nonce: nonce)
    }

    static func client(
        cluster: String = "prod", proofs: HandshakeProofs = proofs, version: UInt16 = Hello.currentProtocolVersion
    )
        -> ClientHandshakeStateMachine
    {
        ClientHandshakeStateMachine(
            cluster: cluster, nodeID: "client-1", proofs: proofs, nonce: clientNonce, protocolVersion: version)
    }

    @Test("both sides authenticate each other and learn each other's node id")
    func success() throws {
        var client = Self.client()
        var server = Self.server()
        let hello = client.start()
        guard case .send(let challenge) = server.receive(hello) else { Issue.record("no challenge"); return }
        guard case .send(let proof) = client.receive(challenge) else { Issue.record("no proof"); return }
        #expect(server.peerNodeID == nil)
        #expect(server.receive(proof) == .authenticated(peerNodeID: "client-1", welcome: .welcome))
        #expect(server.peerNodeID == "client-1")
        #expect(client.peerNodeID == nil)
        #expect(client.receive(.welcome) == .authenticated(peerNodeID: "server-1"))
        #expect(client.peerNodeID == "server-1")
        // Once authenticated, the machines ignore stray handshake frames.
        #expect(server.receive(hello) == .ignore)
        #expect(client.receive(.welcome) == .ignore)
    }

    @Test("the secret crosses the wire in no handshake frame")
    func secretNeverSent() throws {
        var client = Self.client()
        var server = Self.server()
        let hello = client.start()
        guard case .send(let challenge) = server.receive(hello), case .send(let proof) = client.receive(challenge)
        else { Issue.record("handshake did not progress"); return }
        for frame in [hello, challenge, proof, Frame.welcome] {
            var buffer = ByteBuffer()
            FrameCodec.encode(frame, into: &buffer)
            let bytes = Array(buffer.readableBytesView)
            let found =
                bytes.count >= Self.secret.count
                && (0...(bytes.count - Self.secret.count)).contains { Array(bytes[$0..<($0 + Self.secret.count)]) == Self.secret }
            #expect(!found, "\(frame.type) contains the secret")
        }
    }

    @Test("the server refuses a wrong protocol version")
    func wrongVersion() {
        var client = Self.client(version: Hello.currentProtocolVersion + 1)
        var server = Self.server()
        guard case .refuse(.refuse(let refuse), let reason) = server.receive(client.start()) else {
            Issue.record("not refused"); return
        }
        #expect(reason.contains("unsupported protocol version \(Hello.currentProtocolVersion + 1)"))
        #expect(refuse.reason == reason)
        // The client reports the refusal as its failure.
        #expect(client.receive(.refuse(refuse)) == .fail(reason: "refused by the server: \(reason)"))
    }

    @Test("the server refuses a wrong cluster")
    func wrongCluster() {
        var client = Self.client(cluster: "staging")
        var server = Self.server()
        guard case .refuse(_, let reason) = server.receive(client.start()) else { Issue.record("not refused"); return }
        #expect(reason.contains("wrong cluster \"staging\""))
        // After a failure, nothing more happens on the server side.
        #expect(server.receive(.proof(Proof(clientProof: []))) == .ignore)
    }

    @Test("the server closes on a bad magic without answering")
    func badMagic() {
        var server = Self.server()
        let hello = Hello(
            magic: Array("HTTP".utf8), protocolVersion: Hello.currentProtocolVersion, cluster: "prod", nodeID: "x", nonce: Self.clientNonce)
        #expect(server.receive(.hello(hello)) == .close(reason: "bad magic: not a DNA peer"))
    }

    @Test("the server refuses a client proof made with another secret")
    func wrongClientSecret() {
        var server = Self.server()
        var honest = Self.client()
        guard case .send(.challenge(let challenge)) = server.receive(honest.start()) else {
            Issue.record("no challenge"); return
        }
        // An impostor who skips verifying the server and proves with a guessed secret.
        let guessed = HandshakeProofs(secret: Array("not the right secret!".utf8))
        let forged = guessed.proof(
            .client, clientNonce: Self.clientNonce, serverNonce: challenge.nonce, cluster: "prod",
            serverID: challenge.nodeID, clientID: "client-1")
        guard case .refuse(_, let reason) = server.receive(.proof(Proof(clientProof: forged))) else {
            Issue.record("forged proof accepted"); return
        }
        #expect(reason.contains("authentication failed"))
        #expect(server.peerNodeID == nil)
    }

    @Test("the server refuses a proof replayed from an earlier handshake, and a reflected server proof")
    func replayAndReflection() {
        var client = Self.client()
        var first = Self.server(nonce: Self.serverNonce)
        guard case .send(let challenge) = first.receive(client.start()), case .send(let proof) = client.receive(challenge)
        else { Issue.record("handshake did not progress"); return }

        var client2 = Self.client()
        var second = Self.server(nonce: [UInt8](repeating: 0x77, count: 32))
        guard case .send(.challenge(let challenge2)) = second.receive(client2.start()) else {
            Issue.record("no challenge"); return
        }
        guard case .refuse = second.receive(proof) else { Issue.record("replayed proof accepted"); return }

        var third = Self.server()
        var client3 = Self.client()
        guard case .send(.challenge) = third.receive(client3.start()) else { Issue.record("no challenge"); return }
        guard case .refuse = third.receive(.proof(Proof(clientProof: challenge2.serverProof))) else {
            Issue.record("reflected proof accepted"); return
        }
    }

    @Test("the client detects a fake server that does not know the secret, and proves nothing to it")
    func fakeServer() {
        var client = Self.client()
        var fake = Self.server(proofs: HandshakeProofs(secret: Array("the attacker's own secret".utf8)))
        guard case .send(let challenge) = fake.receive(client.start()) else { Issue.record("no challenge"); return }
        guard case .fail(let reason) = client.receive(challenge) else { Issue.record("fake server accepted"); return }
        #expect(reason.contains("does not know the cluster secret"))
        // A Welcome afterwards does not authenticate it.
        #expect(client.receive(.welcome) == .ignore)
        #expect(client.peerNodeID == nil)
    }

    @Test("a Welcome before the Proof does not authenticate the server")
    func earlyWelcome() {
        var client = Self.client()
        _ = client.start()
        guard case .fail = client.receive(.welcome) else { Issue.record("early welcome accepted"); return }
        #expect(client.peerNodeID == nil)
    }

    @Test(
        "frames out of order end the handshake",
        arguments: [
            Frame.proof(Proof(clientProof: [UInt8](repeating: 0, count: 32))),
            .request(WireRequest(id: 1, expectsReply: true, hops: 0, namespace: "", kind: "", key: "", requestName: "", payload: [])),
            .response(WireResponse(id: 1, result: .success([]))),
            .welcome,
        ])
    func outOfOrder(frame: Frame) {
        var server = Self.server()
        guard case .close(let reason) = server.receive(frame) else { Issue.record("accepted \(frame.type)"); return }
        #expect(reason.contains("unexpected"))
        var client = Self.client()
        _ = client.start()
        guard case .fail = client.receive(frame) else { Issue.record("client accepted \(frame.type)"); return }
    }

    @Test("a request before the proof is verified ends the handshake")
    func requestBeforeProof() {
        var server = Self.server()
        var client = Self.client()
        guard case .send = server.receive(client.start()) else { Issue.record("no challenge"); return }
        let request = WireRequest(
            id: 1, expectsReply: true, hops: 0, namespace: "", kind: "", key: "", requestName: "", payload: [])
        guard case .close = server.receive(.request(request)) else { Issue.record("request accepted"); return }
        #expect(server.peerNodeID == nil)
    }
}
